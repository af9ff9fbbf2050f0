"""SQLite's schema, as migrations applied in order; PRAGMA user_version counts them.

Each entity is stored as its protobuf message (`data`) plus the columns the
queries filter and sort on. Never edit a shipped migration: append a new one.
A migration is SQL, or a function for what SQL cannot do (read the messages).
(PostgreSQL's history, postgres/migrations.py, is numbered apart; tests/test_schema_parity.py
holds the two schemas to the same tables, columns and indexes.)
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from runstatus.v1.work_order_pb2 import StepRun

from ..base import DELIVERY_EVENT, DELIVERY_PENDING, PENDING, REJECTED, RUNNING, CannotOpen
from ..rows import fill_work_order_update_times
from . import stats

log = logging.getLogger("runstatus.store")

Migration = str | Callable[[sqlite3.Connection], None]


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Runs an SQL script inside the open transaction, a statement at a time (executescript
    would COMMIT first), split where SQLite says a statement is complete."""
    current = ""
    for part in script.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip().rstrip(";").strip():
                conn.execute(current)
            current = ""


MIGRATIONS: list[Migration] = [
    # 1: the first schema.
    f"""
    CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        data BLOB NOT NULL
    );
    CREATE TABLE workflows (
        project_id TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (project_id, id, version)
    ) WITHOUT ROWID;
    CREATE TABLE work_orders (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        project_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        create_time INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    -- List and Count by status, by workflow and status, and by time alone;
    -- newest first with (create_time, seq) as the keyset.
    CREATE INDEX work_orders_by_status ON work_orders (project_id, status, create_time, seq);
    CREATE INDEX work_orders_by_workflow ON work_orders (project_id, workflow_id, status, create_time, seq);
    CREATE INDEX work_orders_by_time ON work_orders (project_id, create_time, seq);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        work_order_id TEXT NOT NULL,
        project_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        status INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        create_time INTEGER NOT NULL,
        claimed INTEGER NOT NULL DEFAULT 0,
        lease_token TEXT NOT NULL DEFAULT '',
        lease_expire INTEGER NOT NULL DEFAULT 0,
        deadline INTEGER NOT NULL DEFAULT 0,
        data BLOB NOT NULL,
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
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX step_runs_by_run ON step_runs (run_id);
    -- The append-only event log; seq is the watch cursor.
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id TEXT NOT NULL,
        work_order_id TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX events_by_project ON events (project_id, seq);
    -- Idempotency: the first answer to each request_id.
    CREATE TABLE requests (
        request_id TEXT PRIMARY KEY,
        method TEXT NOT NULL,
        fingerprint BLOB NOT NULL,
        response BLOB NOT NULL,
        create_time INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
]

# 2: work order counts by project, workflow, status and hour of creation, kept by
# triggers, so CountWorkOrders sums a few buckets instead of scanning millions of rows.
MIGRATIONS.append(
    """
    CREATE TABLE work_order_counts (
        project_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, workflow_id, status, hour)
    ) WITHOUT ROWID;
    INSERT INTO work_order_counts (project_id, workflow_id, status, hour, n)
        SELECT project_id, workflow_id, status, create_time / 3600000000, count(*)
        FROM work_orders GROUP BY 1, 2, 3, 4;
    CREATE TRIGGER work_orders_counted_insert AFTER INSERT ON work_orders BEGIN
        INSERT INTO work_order_counts (project_id, workflow_id, status, hour, n)
            VALUES (NEW.project_id, NEW.workflow_id, NEW.status, NEW.create_time / 3600000000, 1)
            ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER work_orders_counted_update AFTER UPDATE ON work_orders
        WHEN OLD.status != NEW.status OR OLD.project_id != NEW.project_id
          OR OLD.workflow_id != NEW.workflow_id OR OLD.create_time != NEW.create_time
    BEGIN
        UPDATE work_order_counts SET n = n - 1
            WHERE project_id = OLD.project_id AND workflow_id = OLD.workflow_id
              AND status = OLD.status AND hour = OLD.create_time / 3600000000;
        INSERT INTO work_order_counts (project_id, workflow_id, status, hour, n)
            VALUES (NEW.project_id, NEW.workflow_id, NEW.status, NEW.create_time / 3600000000, 1)
            ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER work_orders_counted_delete AFTER DELETE ON work_orders BEGIN
        UPDATE work_order_counts SET n = n - 1
            WHERE project_id = OLD.project_id AND workflow_id = OLD.workflow_id
              AND status = OLD.status AND hour = OLD.create_time / 3600000000;
    END
    """
)

# 3: API tokens, stored as a hash of their secret.
MIGRATIONS.append(
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE INDEX tokens_by_project ON tokens (project_id, id)
    """
)

# 4: answers kept for CreateToken request ids held the token's secret in plain text (only
# its hash may be stored). Newer servers keep the answer without it; the old ones go.
MIGRATIONS.append(
    """
    DELETE FROM requests WHERE method = 'CreateToken'
    """
)


def _step_run_columns(conn: sqlite3.Connection) -> None:
    """5: step runs get the columns a report looks them up by, and runs the count and bytes
    of their step runs, so that a report costs the same however many step runs a run has;
    kept answers get an index by age, so that they can be pruned."""
    run_script(
        conn,
        """
        ALTER TABLE step_runs ADD COLUMN step_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE step_runs ADD COLUMN previous_step_run_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE step_runs ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN step_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE runs ADD COLUMN step_bytes INTEGER NOT NULL DEFAULT 0;
        """
    )
    for step_run_id, data in conn.execute("SELECT id, data FROM step_runs").fetchall():
        step_run = StepRun.FromString(data)
        conn.execute(
            "UPDATE step_runs SET step_id = ?, previous_step_run_id = ?, status = ? WHERE id = ?",
            (step_run.step_id, step_run.previous_step_run_id, step_run.status, step_run_id),
        )
    run_script(
        conn,
        f"""
        UPDATE runs SET
            step_count = (SELECT count(*) FROM step_runs WHERE run_id = runs.id),
            step_bytes = (SELECT coalesce(sum(length(data)), 0) FROM step_runs WHERE run_id = runs.id);
        CREATE INDEX step_runs_by_start ON step_runs (run_id, step_id, previous_step_run_id);
        CREATE INDEX step_runs_running ON step_runs (run_id) WHERE status = {RUNNING};
        CREATE INDEX requests_by_age ON requests (create_time);
        """
    )


MIGRATIONS.append(_step_run_columns)


def _work_order_update_time(conn: sqlite3.Connection) -> None:
    """6: work orders get the column and index that ListWorkOrders and CountWorkOrders filter
    a range of change times (WorkOrderFilter.update_time_*) by."""
    conn.execute("ALTER TABLE work_orders ADD COLUMN update_time INTEGER NOT NULL DEFAULT 0")
    fill_work_order_update_times(conn, "?")
    conn.execute("CREATE INDEX work_orders_by_update ON work_orders (project_id, update_time)")


MIGRATIONS.append(_work_order_update_time)

# 7: work order counts by the hour of their last change too (work_order_change_counts, kept by
# triggers as work_order_counts is by the hour of creation), so that CountWorkOrders over a
# range of change times sums buckets instead of counting millions of rows.
MIGRATIONS.append(
    """
    CREATE TABLE work_order_change_counts (
        project_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (project_id, workflow_id, status, hour)
    ) WITHOUT ROWID;
    INSERT INTO work_order_change_counts (project_id, workflow_id, status, hour, n)
        SELECT project_id, workflow_id, status, update_time / 3600000000, count(*)
        FROM work_orders GROUP BY 1, 2, 3, 4;
    CREATE TRIGGER work_orders_change_counted_insert AFTER INSERT ON work_orders BEGIN
        INSERT INTO work_order_change_counts (project_id, workflow_id, status, hour, n)
            VALUES (NEW.project_id, NEW.workflow_id, NEW.status, NEW.update_time / 3600000000, 1)
            ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER work_orders_change_counted_update AFTER UPDATE ON work_orders
        WHEN OLD.status != NEW.status OR OLD.project_id != NEW.project_id
          OR OLD.workflow_id != NEW.workflow_id OR OLD.update_time / 3600000000 != NEW.update_time / 3600000000
    BEGIN
        UPDATE work_order_change_counts SET n = n - 1
            WHERE project_id = OLD.project_id AND workflow_id = OLD.workflow_id
              AND status = OLD.status AND hour = OLD.update_time / 3600000000;
        INSERT INTO work_order_change_counts (project_id, workflow_id, status, hour, n)
            VALUES (NEW.project_id, NEW.workflow_id, NEW.status, NEW.update_time / 3600000000, 1)
            ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER work_orders_change_counted_delete AFTER DELETE ON work_orders BEGIN
        UPDATE work_order_change_counts SET n = n - 1
            WHERE project_id = OLD.project_id AND workflow_id = OLD.workflow_id
              AND status = OLD.status AND hour = OLD.update_time / 3600000000;
    END
    """
)


# 8: notifications (notifications/): subscriptions, each with its cursor over the event log, and
# the deliveries owed to them, written with the cursor's advance in one transaction so that
# nothing owed is held only in memory; a delivery is unique by subscription and event.
MIGRATIONS.append(
    f"""
    CREATE TABLE notification_subscriptions (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL DEFAULT '',
        target_kind TEXT NOT NULL,
        target TEXT NOT NULL,
        secret TEXT NOT NULL DEFAULT '',
        event_filter TEXT NOT NULL,
        scan_cursor INTEGER NOT NULL DEFAULT 0,
        create_time INTEGER NOT NULL,
        update_time INTEGER NOT NULL
    );
    CREATE INDEX notification_subscriptions_by_project ON notification_subscriptions (project_id, id);
    CREATE TABLE notification_deliveries (
        id TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL,
        event_seq INTEGER NOT NULL,
        state INTEGER NOT NULL DEFAULT {DELIVERY_PENDING},
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_time INTEGER NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        body BLOB NOT NULL,
        create_time INTEGER NOT NULL,
        update_time INTEGER NOT NULL,
        UNIQUE (subscription_id, event_seq)
    );
    -- The deliveries owed, by subscription, soonest due first.
    CREATE INDEX notification_deliveries_owed ON notification_deliveries (subscription_id, next_attempt_time)
        WHERE state = {DELIVERY_PENDING};
    """
)


# 9: subscriptions through the API (NotificationService): a name and a rate cap; deliveries of
# three kinds (an event, a digest of several, a test), with how many events each carries, and
# owed_time, when its retry window began (its create_time, or its last redelivery's). Indexes for
# the delivery log (newest first) and for dropping what is done past its retention.
MIGRATIONS.append(
    f"""
    ALTER TABLE notification_subscriptions ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE notification_subscriptions ADD COLUMN max_per_minute INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE notification_deliveries ADD COLUMN kind INTEGER NOT NULL DEFAULT {DELIVERY_EVENT};
    ALTER TABLE notification_deliveries ADD COLUMN event_count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE notification_deliveries ADD COLUMN owed_time INTEGER NOT NULL DEFAULT 0;
    UPDATE notification_deliveries SET owed_time = create_time;
    CREATE INDEX notification_deliveries_log ON notification_deliveries (subscription_id, create_time, id);
    CREATE INDEX notification_deliveries_done ON notification_deliveries (update_time)
        WHERE state <> {DELIVERY_PENDING};
    """
)


# 10: retention (retention.py, pruner.py). The pruner finds a project's ended work orders of one
# status by their last change (work_orders_by_status_update) and deletes each with its events
# (events_by_work_order); event_log_horizon holds, in its one row, the highest event sequence it has
# deleted (a watch cursor below it is expired); payload_erase_marks holds, per project, how far
# by (update_time, seq) the payload eraser has gone, so that it never reads the same rows twice.
MIGRATIONS.append(
    """
    CREATE INDEX work_orders_by_status_update ON work_orders (project_id, status, update_time);
    CREATE INDEX events_by_work_order ON events (work_order_id);
    CREATE TABLE event_log_horizon (
        pruned_through INTEGER NOT NULL
    );
    INSERT INTO event_log_horizon (pruned_through) VALUES (0);
    CREATE TABLE payload_erase_marks (
        project_id TEXT PRIMARY KEY,
        update_time INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    """
)


# 11: statistics (StatsService, issue 31): a row of run_facts per ended run, and hour buckets of
# run durations and of errors kept from it by triggers (sqlite/stats.py, store/stats.py).
MIGRATIONS.append(stats.migrate_stats)

# 12: the statistics' rollups: work orders by hour with a column per status, run durations and
# errors by day, so that a week's window reads a few thousand rows (sqlite/stats.py).
MIGRATIONS.append(stats.ROLLUP_MIGRATION)


def migrate(conn: sqlite3.Connection) -> int:
    """Brings a database file of any earlier schema version up to date. Returns the version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise CannotOpen(f"the database was written by a newer runstatus (schema version {version}; this "
                         f"server knows {len(MIGRATIONS)}): upgrade runstatus, or give it another --db")
    for number in range(version, len(MIGRATIONS)):
        migration = MIGRATIONS[number]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if isinstance(migration, str):
                # executescript would COMMIT first: each statement goes on its own instead.
                run_script(conn, migration)
            else:
                migration(conn)
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("migrated database schema to version %d", number + 1)
    return len(MIGRATIONS)
