"""Schema migrations upgrade an existing database file and keep its data."""

from __future__ import annotations

import pathlib
import sqlite3

import pytest

from harness import Client, ServerProcess
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus_server.store.base import CannotOpen
from runstatus_server.store.sqlite import engine, migrations
from runstatus_server.store.sqlite.rows import SqliteTx

pytestmark = pytest.mark.sqlite_only("SQLite's schema migrations")

SHIPPED = migrations.MIGRATIONS  # the migrations as shipped (a test may put others in their place)


def test_a_new_migration_upgrades_an_existing_file(tmp: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ServerProcess(tmp / "runstatus.db").start()
    client = Client(server.address)
    created = client.work_order(client.workflow(["a"]))
    client.close()
    server.stop()

    extra = "ALTER TABLE work_orders ADD COLUMN note TEXT; CREATE INDEX work_orders_note ON work_orders (note)"
    monkeypatch.setattr(migrations, "MIGRATIONS", [*SHIPPED, extra])
    conn = engine.connect(str(tmp / "runstatus.db"))
    assert migrations.migrate(conn) == len(migrations.MIGRATIONS)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(migrations.MIGRATIONS)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(work_orders)")]
    assert "note" in columns
    assert conn.execute("SELECT count(*) FROM work_orders WHERE id = ?", (created.work_order.id,)).fetchone()[0] == 1
    # Applying again changes nothing.
    assert migrations.migrate(conn) == len(migrations.MIGRATIONS)
    conn.close()


def test_a_failed_migration_leaves_the_file_as_it_was(tmp: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = engine.connect(str(tmp / "x.db"))
    migrations.migrate(conn)
    monkeypatch.setattr(migrations, "MIGRATIONS", [*SHIPPED, "CREATE TABLE t (x); SELECT nonsense FROM nowhere"])
    with pytest.raises(sqlite3.OperationalError):
        migrations.migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(SHIPPED)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0] == 0


def test_a_newer_database_is_refused(tmp: pathlib.Path) -> None:
    conn = engine.connect(str(tmp / "x.db"))
    conn.execute(f"PRAGMA user_version = {len(SHIPPED) + 1}")
    with pytest.raises(CannotOpen, match="newer"):
        migrations.migrate(conn)


def test_the_server_reopens_its_file(tmp: pathlib.Path) -> None:
    server = ServerProcess(tmp / "runstatus.db").start()
    client = Client(server.address)
    created = client.work_order(client.workflow(["a"]))
    client.close()
    server.stop()
    server = server.restart()
    client = Client(server.address)
    try:
        got = client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=created.work_order.id))
        assert got.work_order == created.work_order
    finally:
        client.close()
        server.stop()


def test_migration_5_fills_the_step_run_columns_of_an_existing_file(tmp: pathlib.Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A database of schema 4 with step runs: after migration 5, each step run has its
    columns and each run its step count and bytes, read from the stored messages."""
    from runstatus.v1.work_order_pb2 import Run, StepRun

    path = str(tmp / "v4.db")
    monkeypatch.setattr(migrations, "MIGRATIONS", SHIPPED[:4])
    conn = engine.connect(path)
    assert migrations.migrate(conn) == 4
    steps = [StepRun(id=f"sr{i}", run_id="r1", step_id=f"s{i}", status=2 if i == 2 else 3,
                     previous_step_run_id=f"sr{i - 1}" if i else "") for i in range(3)]
    conn.execute("INSERT INTO runs (id, work_order_id, project_id, number, status, priority, create_time, data) "
                 "VALUES ('r1', 'w1', 'default', 1, 2, 0, 0, ?)", (Run(id="r1").SerializeToString(),))
    for s in steps:
        conn.execute("INSERT INTO step_runs (id, run_id, data) VALUES (?, ?, ?)", (s.id, s.run_id, s.SerializeToString()))
    monkeypatch.setattr(migrations, "MIGRATIONS", SHIPPED)
    assert migrations.migrate(conn) == len(SHIPPED)
    tx = SqliteTx(conn)
    stored = tx.get_run("r1")
    assert stored is not None
    assert (stored.step_count, stored.step_bytes) == (3, sum(s.ByteSize() for s in steps))
    assert [s.id for s in tx.running_step_runs("r1")] == ["sr2"]
    assert tx.step_run_started("r1", "s1", "sr0") and not tx.step_run_started("r1", "s1", "")
    conn.close()
