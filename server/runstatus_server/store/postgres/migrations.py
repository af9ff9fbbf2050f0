"""PostgreSQL's schema, as numbered migrations of its own, applied in order at start-up.

The same tables as SQLite's schema (sqlite/migrations.py) at its latest version, in PostgreSQL's
types: BYTEA for the protobuf messages (`data`), BIGINT for times in microseconds, identity
columns for the sequences, and text in the "C" collation, so that ids sort by their bytes as in
SQLite, whatever the database's locale (lists by id, and their page tokens, stay the same).
`schema_version` holds how many migrations ran. Servers that start at once take turns through a
session advisory lock, so each migration runs exactly once. Never edit a shipped migration:
append a new one. (tests/test_schema_parity.py holds the two schemas to the same tables,
columns and indexes.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg

from ..base import DELIVERY_EVENT, DELIVERY_PENDING, PENDING, REJECTED, RUNNING, CannotOpen
from ..rows import fill_work_order_update_times
from . import stats
from .locks import EVENT_LOCK, MIGRATION_LOCK

log = logging.getLogger("runstatus.store")

# A migration is SQL, or a function for what SQL cannot do (read the messages).
MIGRATIONS: list[str | Callable[[psycopg.Connection], None]] = [
    # 1: the schema of SQLite's migrations 1 to 5 together.
    f"""
    CREATE TABLE projects (
        id TEXT COLLATE "C" PRIMARY KEY,
        data BYTEA NOT NULL
    );
    CREATE TABLE workflows (
        project_id TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (project_id, id, version)
    );
    CREATE TABLE work_orders (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT COLLATE "C" NOT NULL UNIQUE,
        project_id TEXT COLLATE "C" NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        status INTEGER NOT NULL,
        create_time BIGINT NOT NULL,
        data BYTEA NOT NULL
    );
    -- List and Count by status, by workflow and status, and by time alone;
    -- newest first with (create_time, seq) as the keyset.
    CREATE INDEX work_orders_by_status ON work_orders (project_id, status, create_time, seq);
    CREATE INDEX work_orders_by_workflow ON work_orders (project_id, workflow_id, status, create_time, seq);
    CREATE INDEX work_orders_by_time ON work_orders (project_id, create_time, seq);
    CREATE TABLE runs (
        id TEXT COLLATE "C" PRIMARY KEY,
        work_order_id TEXT COLLATE "C" NOT NULL,
        project_id TEXT COLLATE "C" NOT NULL,
        number INTEGER NOT NULL,
        status INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        create_time BIGINT NOT NULL,
        claimed SMALLINT NOT NULL DEFAULT 0,
        lease_token TEXT COLLATE "C" NOT NULL DEFAULT '',
        lease_expire BIGINT NOT NULL DEFAULT 0,
        deadline BIGINT NOT NULL DEFAULT 0,
        step_count INTEGER NOT NULL DEFAULT 0,
        step_bytes BIGINT NOT NULL DEFAULT 0,
        data BYTEA NOT NULL,
        UNIQUE (work_order_id, number)
    );
    -- ClaimRuns: pending and unclaimed, highest priority then oldest first.
    CREATE INDEX runs_claimable ON runs (priority DESC, create_time) WHERE status = {PENDING} AND claimed = 0;
    CREATE INDEX runs_claimable_by_project ON runs (project_id, priority DESC, create_time)
        WHERE status = {PENDING} AND claimed = 0;
    -- The sweeper: leases that expire, runs that outlive their max runtime.
    CREATE INDEX runs_leased ON runs (lease_expire) WHERE status IN ({PENDING}, {RUNNING}) AND claimed = 1;
    CREATE INDEX runs_deadline ON runs (deadline) WHERE status = {RUNNING} AND deadline > 0;
    -- Run limits: runs in flight, runs created in a window.
    CREATE INDEX runs_in_flight ON runs (project_id) WHERE status IN ({PENDING}, {RUNNING});
    CREATE INDEX runs_created ON runs (project_id, create_time) WHERE status != {REJECTED};
    CREATE TABLE step_runs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,  -- the order they were started in
        id TEXT COLLATE "C" PRIMARY KEY,
        run_id TEXT COLLATE "C" NOT NULL,
        step_id TEXT COLLATE "C" NOT NULL DEFAULT '',
        previous_step_run_id TEXT COLLATE "C" NOT NULL DEFAULT '',
        status INTEGER NOT NULL DEFAULT 0,
        data BYTEA NOT NULL
    );
    CREATE INDEX step_runs_by_run ON step_runs (run_id, seq);
    CREATE INDEX step_runs_by_start ON step_runs (run_id, step_id, previous_step_run_id);
    CREATE INDEX step_runs_running ON step_runs (run_id, seq) WHERE status = {RUNNING};
    -- The append-only event log; seq is the watch cursor (see append_event for its order).
    CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        project_id TEXT COLLATE "C" NOT NULL,
        work_order_id TEXT COLLATE "C" NOT NULL,
        data BYTEA NOT NULL
    );
    CREATE INDEX events_by_project ON events (project_id, seq);
    CREATE TABLE tokens (
        id TEXT COLLATE "C" PRIMARY KEY,
        project_id TEXT COLLATE "C" NOT NULL,
        secret_hash TEXT COLLATE "C" NOT NULL,
        data BYTEA NOT NULL
    );
    CREATE INDEX tokens_by_project ON tokens (project_id, id);
    -- Idempotency: the first answer to each request_id.
    CREATE TABLE requests (
        request_id TEXT COLLATE "C" PRIMARY KEY,
        method TEXT COLLATE "C" NOT NULL,
        fingerprint BYTEA NOT NULL,
        response BYTEA NOT NULL,
        create_time BIGINT NOT NULL
    );
    CREATE INDEX requests_by_age ON requests (create_time);
    -- Work order counts by project, workflow, status and hour of creation, kept by a
    -- trigger, so CountWorkOrders sums a few buckets instead of scanning millions of rows.
    CREATE TABLE work_order_counts (
        project_id TEXT COLLATE "C" NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        status INTEGER NOT NULL,
        hour BIGINT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (project_id, workflow_id, status, hour)
    );
    -- A bucket row is a hot spot that concurrent writers lock: the trigger first takes the
    -- event lock (which every status change takes anyway, for its event), so that writers
    -- never hold a bucket while waiting for that lock, the cycle of a deadlock.
    CREATE FUNCTION work_orders_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({EVENT_LOCK});
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE work_order_counts SET n = n - 1
                WHERE project_id = OLD.project_id AND workflow_id = OLD.workflow_id
                  AND status = OLD.status AND hour = div(OLD.create_time, 3600000000);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            INSERT INTO work_order_counts AS c (project_id, workflow_id, status, hour, n)
                VALUES (NEW.project_id, NEW.workflow_id, NEW.status, div(NEW.create_time, 3600000000), 1)
                ON CONFLICT (project_id, workflow_id, status, hour) DO UPDATE SET n = c.n + 1;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER work_orders_counted_rows AFTER INSERT OR DELETE ON work_orders
        FOR EACH ROW EXECUTE FUNCTION work_orders_counted();
    CREATE TRIGGER work_orders_counted_update AFTER UPDATE ON work_orders FOR EACH ROW
        WHEN (OLD.status != NEW.status OR OLD.project_id != NEW.project_id
              OR OLD.workflow_id != NEW.workflow_id OR OLD.create_time != NEW.create_time)
        EXECUTE FUNCTION work_orders_counted();
    """,
]


def _work_order_update_time(conn: psycopg.Connection) -> None:
    """2: work orders get the column and index that ListWorkOrders and CountWorkOrders filter
    a range of change times (WorkOrderFilter.update_time_*) by (SQLite's migration 6)."""
    conn.execute("ALTER TABLE work_orders ADD COLUMN update_time BIGINT NOT NULL DEFAULT 0")
    fill_work_order_update_times(conn, "%s")
    conn.execute("CREATE INDEX work_orders_by_update ON work_orders (project_id, update_time)")


MIGRATIONS.append(_work_order_update_time)

# 3: the hour buckets without a hot row. A bucket row that every writer of its project, workflow,
# status and hour updated was locked by each until its COMMIT: such writers went one at a time
# (and the trigger took the event lock first, to order those row locks). Now each change inserts
# a row of its own (+1 or -1, `pending`), which locks nothing, a count sums the rows as before,
# and the sweeping server merges each bucket's pending rows into one (merge_count_deltas).
MIGRATIONS.append(
    """
    ALTER TABLE work_order_counts DROP CONSTRAINT work_order_counts_pkey;
    ALTER TABLE work_order_counts ADD COLUMN pending BOOLEAN NOT NULL DEFAULT false;
    CREATE INDEX work_order_counts_by_bucket ON work_order_counts (project_id, workflow_id, status, hour);
    CREATE INDEX work_order_counts_pending ON work_order_counts (project_id, workflow_id, status, hour)
        WHERE pending;
    CREATE OR REPLACE FUNCTION work_orders_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO work_order_counts (project_id, workflow_id, status, hour, n, pending)
                VALUES (OLD.project_id, OLD.workflow_id, OLD.status, div(OLD.create_time, 3600000000), -1, true);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            INSERT INTO work_order_counts (project_id, workflow_id, status, hour, n, pending)
                VALUES (NEW.project_id, NEW.workflow_id, NEW.status, div(NEW.create_time, 3600000000), 1, true);
        END IF;
        RETURN NULL;
    END $$;
    """
)

# 4: counts by the hour of a work order's last change too (SQLite's migration 7), as rows of
# changes like work_order_counts since migration 3.
MIGRATIONS.append(
    """
    CREATE TABLE work_order_change_counts (
        project_id TEXT COLLATE "C" NOT NULL,
        workflow_id TEXT COLLATE "C" NOT NULL,
        status INTEGER NOT NULL,
        hour BIGINT NOT NULL,
        n BIGINT NOT NULL,
        pending BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX work_order_change_counts_by_bucket ON work_order_change_counts (project_id, workflow_id, status, hour);
    CREATE INDEX work_order_change_counts_pending ON work_order_change_counts (project_id, workflow_id, status, hour)
        WHERE pending;
    INSERT INTO work_order_change_counts (project_id, workflow_id, status, hour, n)
        SELECT project_id, workflow_id, status, div(update_time, 3600000000), count(*)
        FROM work_orders GROUP BY 1, 2, 3, 4;
    CREATE FUNCTION work_orders_change_counted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO work_order_change_counts (project_id, workflow_id, status, hour, n, pending)
                VALUES (OLD.project_id, OLD.workflow_id, OLD.status, div(OLD.update_time, 3600000000), -1, true);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            INSERT INTO work_order_change_counts (project_id, workflow_id, status, hour, n, pending)
                VALUES (NEW.project_id, NEW.workflow_id, NEW.status, div(NEW.update_time, 3600000000), 1, true);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER work_orders_change_counted_rows AFTER INSERT OR DELETE ON work_orders
        FOR EACH ROW EXECUTE FUNCTION work_orders_change_counted();
    CREATE TRIGGER work_orders_change_counted_update AFTER UPDATE ON work_orders FOR EACH ROW
        WHEN (OLD.status != NEW.status OR OLD.project_id != NEW.project_id OR OLD.workflow_id != NEW.workflow_id
              OR div(OLD.update_time, 3600000000) != div(NEW.update_time, 3600000000))
        EXECUTE FUNCTION work_orders_change_counted();
    """
)


# 5: notifications (SQLite's migration 8).
MIGRATIONS.append(
    f"""
    CREATE TABLE notification_subscriptions (
        id TEXT COLLATE "C" PRIMARY KEY,
        project_id TEXT COLLATE "C" NOT NULL DEFAULT '',
        target_kind TEXT COLLATE "C" NOT NULL,
        target TEXT COLLATE "C" NOT NULL,
        secret TEXT COLLATE "C" NOT NULL DEFAULT '',
        event_filter TEXT COLLATE "C" NOT NULL,
        scan_cursor BIGINT NOT NULL DEFAULT 0,
        create_time BIGINT NOT NULL,
        update_time BIGINT NOT NULL
    );
    CREATE INDEX notification_subscriptions_by_project ON notification_subscriptions (project_id, id);
    CREATE TABLE notification_deliveries (
        id TEXT COLLATE "C" PRIMARY KEY,
        subscription_id TEXT COLLATE "C" NOT NULL,
        event_seq BIGINT NOT NULL,
        state INTEGER NOT NULL DEFAULT {DELIVERY_PENDING},
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_time BIGINT NOT NULL,
        last_error TEXT COLLATE "C" NOT NULL DEFAULT '',
        body BYTEA NOT NULL,
        create_time BIGINT NOT NULL,
        update_time BIGINT NOT NULL,
        UNIQUE (subscription_id, event_seq)
    );
    CREATE INDEX notification_deliveries_owed ON notification_deliveries (subscription_id, next_attempt_time)
        WHERE state = {DELIVERY_PENDING};
    """
)


# 6: notification subscriptions through the API (SQLite's migration 9).
MIGRATIONS.append(
    f"""
    ALTER TABLE notification_subscriptions ADD COLUMN name TEXT COLLATE "C" NOT NULL DEFAULT '';
    ALTER TABLE notification_subscriptions ADD COLUMN max_per_minute INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE notification_deliveries ADD COLUMN kind INTEGER NOT NULL DEFAULT {DELIVERY_EVENT};
    ALTER TABLE notification_deliveries ADD COLUMN event_count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE notification_deliveries ADD COLUMN owed_time BIGINT NOT NULL DEFAULT 0;
    UPDATE notification_deliveries SET owed_time = create_time;
    CREATE INDEX notification_deliveries_log ON notification_deliveries (subscription_id, create_time, id);
    CREATE INDEX notification_deliveries_done ON notification_deliveries (update_time)
        WHERE state <> {DELIVERY_PENDING};
    """
)


# 7: autovacuum for the tables retention deletes from (issue 29), in batches through the day: at
# the default 20% of a table's rows dead before a vacuum, a large events table would hold millions
# of dead rows (and their space) between vacuums; at 2% its space is reused as it is freed.
MIGRATIONS.append(
    """
    ALTER TABLE work_orders SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
    ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
    ALTER TABLE step_runs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
    ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
    """
)


# 8: retention (SQLite's migration 10).
MIGRATIONS.append(
    """
    CREATE INDEX work_orders_by_status_update ON work_orders (project_id, status, update_time);
    CREATE INDEX events_by_work_order ON events (work_order_id);
    CREATE TABLE event_log_horizon (
        pruned_through BIGINT NOT NULL
    );
    INSERT INTO event_log_horizon (pruned_through) VALUES (0);
    CREATE TABLE payload_erase_marks (
        project_id TEXT COLLATE "C" PRIMARY KEY,
        update_time BIGINT NOT NULL,
        seq BIGINT NOT NULL
    );
    """
)


# 9: a write's last statement before its COMMIT (issue 30; rows.py PostgresTx.finish). It checks
# what the write took from this server's cache instead of reading it (a project's row version,
# a workflow's latest version), failing as a serialization failure (40001: the engine tries the
# write again, its cache dropped) if another server changed it; then appends the write's events
# in their order under the event lock (EVENT_LOCK, see write_events) and wakes the other servers.
# One statement, so the whole write is one round trip: BEGIN, its INSERTs, this, COMMIT.
MIGRATIONS.append(
    """
    CREATE FUNCTION runstatus_finish_write(
        project_ids TEXT[], project_versions TEXT[],
        workflow_projects TEXT[], workflow_ids TEXT[], workflow_versions BIGINT[],
        event_lock BIGINT, event_projects TEXT[], event_work_orders TEXT[], event_data BYTEA[],
        channel TEXT, origin TEXT
    ) RETURNS VOID LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM unnest(project_ids, project_versions) AS c(id, version)
                   WHERE NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = c.id AND p.xmin::text = c.version)) THEN
            RAISE EXCEPTION 'a project changed since this server cached it' USING ERRCODE = '40001';
        END IF;
        IF EXISTS (SELECT 1 FROM unnest(workflow_projects, workflow_ids, workflow_versions) AS c(project_id, id, version)
                   WHERE EXISTS (SELECT 1 FROM workflows w WHERE w.project_id = c.project_id AND w.id = c.id
                                 AND w.version > c.version)) THEN
            RAISE EXCEPTION 'a workflow has a newer version than this server cached' USING ERRCODE = '40001';
        END IF;
        IF cardinality(event_data) > 0 THEN
            PERFORM pg_advisory_xact_lock(event_lock);
            INSERT INTO events (project_id, work_order_id, data)
                SELECT e.project_id, e.work_order_id, e.data
                FROM unnest(event_projects, event_work_orders, event_data) WITH ORDINALITY
                     AS e(project_id, work_order_id, data, n)
                ORDER BY e.n;
            PERFORM pg_notify(channel, origin);
        END IF;
    END
    $$;
    """
)


# 10: statistics (StatsService, issue 31; SQLite's migration 11): run_facts and the hour buckets of
# run durations and errors kept from it by a trigger, as rows of changes (postgres/stats.py).
MIGRATIONS.append(stats.migrate_stats)

# 11: the statistics' rollups (SQLite's migration 12; postgres/stats.py).
MIGRATIONS.append(stats.ROLLUP_MIGRATION)


def migrate(conn: psycopg.Connection) -> int:
    """Brings the database's schema up to date, whatever servers start beside this one: they
    take turns through a session advisory lock, and each finds the version the last left.
    `conn` is in autocommit mode; each migration commits with its version. Returns it."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > len(MIGRATIONS):
            raise CannotOpen(f"the database was written by a newer runstatus (schema version {version}; this "
                             f"server knows {len(MIGRATIONS)}): upgrade runstatus, or give it another --db")
        for number in range(version, len(MIGRATIONS)):
            with conn.transaction():
                migration = MIGRATIONS[number]
                if callable(migration):
                    migration(conn)
                else:
                    conn.execute(migration)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number + 1,))
            log.info("migrated database schema to version %d", number + 1)
        return len(MIGRATIONS)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
