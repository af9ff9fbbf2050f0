"""The database file itself: deleted, renamed, replaced, newer, unwritable (issue 12, item 4);
its -wal deleted or replaced, its -shm truncated (issue 26, items 7 and 8).

A write committed into a file that is no longer at the server's path would be acknowledged,
then lost on restart: the server must notice, refuse, say so, and flip health.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pathlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Client, ServerProcess, details, eventually, free_port, rpc_error, scrape
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.workflow_pb2 import Workflow
from runstatus_server.store.base import DatabaseFileGone
from runstatus_server.store.sqlite import migrations
from runstatus_server.store.sqlite.engine import SqliteStore

pytestmark = pytest.mark.sqlite_only("the database file, its -wal and -shm: deleted, replaced, truncated, of a newer schema")

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING





def _health(client: Client) -> int:
    return int(health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(service="")).status)


def test_a_renamed_or_deleted_file_refuses_writes_and_flips_health(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "runstatus.db"
    metrics_port = free_port()
    server = ServerProcess(db, "--sweep-seconds", "0.2", "--metrics-port", str(metrics_port)).start()
    c = Client(server.address)
    try:
        wf = c.workflow(["a"])
        acknowledged = [c.work_order(wf).work_order.id for _ in range(5)]
        moved = tmp_path / "moved.db"
        db.rename(moved)
        e = rpc_error(c.work_order, wf)
        assert e.code() == grpc.StatusCode.UNAVAILABLE
        assert details(e)[0].reason == "DATABASE_FILE_GONE"
        assert "deleted or renamed" in (e.details() or "")
        assert eventually(lambda: _health(c) == NOT_SERVING)
        assert eventually(lambda: any(entry.get("level") == "error" and "writes refused" in entry["message"]
                                      for entry in server.log_entries()))
        # Reads go on, on every reader thread (scrapes at once keep them all busy, so each of
        # them serves one), and leave no empty database at the path.
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=acknowledged[0]))
        assert got.work_order.id == acknowledged[0]
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            scrapes = list(pool.map(lambda _: scrape(metrics_port), range(12)))
            lists = list(pool.map(lambda _: c.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest()), range(12)))
        assert all('runstatus_work_orders{status="pending"} 5.0' in scraped for scraped in scrapes)
        assert all(len(listed.work_orders) == 5 for listed in lists)
        assert not db.exists()
        # The file comes back: writes are accepted again, and health says so.
        moved.rename(db)
        acknowledged.append(c.work_order(wf).work_order.id)
        assert eventually(lambda: _health(c) == SERVING)
        # Replaced by another file: refused too.
        db.rename(moved)
        sqlite3.connect(db).close()
        e = rpc_error(c.work_order, wf)
        assert (e.code(), details(e)[0].reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_FILE_GONE")
        assert "replaced" in (e.details() or "")
    finally:
        c.close()
        server.stop()
    # Every acknowledged work order is in the file the server opened; nothing refused is.
    with sqlite3.connect(moved) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM work_orders")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert ids == set(acknowledged)


def _start_and_fail(db: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runstatus_server", "serve", "--port", "0", "--db", str(db)],
        capture_output=True, text=True, timeout=60,
    )


def test_a_server_creates_a_missing_file(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "runstatus.db"
    assert not db.exists()
    server = ServerProcess(db).start()
    try:
        assert db.exists()
        c = Client(server.address)
        assert c.work_order(c.workflow(["a"])).work_order.id
        c.close()
    finally:
        server.stop()


def test_a_database_of_a_newer_schema_is_refused_with_a_clear_message(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "newer.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {len(migrations.MIGRATIONS) + 7}")
    out = _start_and_fail(db)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "written by a newer runstatus" in out.stderr and "upgrade runstatus" in out.stderr
    with sqlite3.connect(db) as conn:  # and left as it was
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(migrations.MIGRATIONS) + 7


def test_an_unwritable_shm_file_is_refused_at_start(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "runstatus.db"
    server = ServerProcess(db).start()
    c = Client(server.address)
    c.work_order(c.workflow(["a"]))
    c.close()
    server.stop(signal.SIGKILL)  # a crash leaves the -wal and -shm files behind
    shm = pathlib.Path(f"{db}-shm")
    assert shm.exists()
    # Read-only for everyone, root included (the tests run as root, where chmod stops nothing).
    if subprocess.run(["chattr", "+i", str(shm)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        out = _start_and_fail(db)
    finally:
        subprocess.run(["chattr", "-i", str(shm)], check=True)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert f"cannot write {shm}" in out.stderr
    # Writable again, it serves, with the acknowledged work order.
    server = ServerProcess(db).start()
    try:
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM work_orders").fetchone()[0] == 1
    finally:
        server.stop()
    assert os.access(shm, os.W_OK) or not shm.exists()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_wal_refuses_writes_and_loses_no_acknowledged_one(
        tmp_path: pathlib.Path, how: str) -> None:
    db = tmp_path / "runstatus.db"
    wal = pathlib.Path(f"{db}-wal")
    server = ServerProcess(db, "--sweep-seconds", "0.2").start()
    c = Client(server.address)
    try:
        wf = c.workflow(["a"])
        acknowledged = [c.work_order(wf).work_order.id for _ in range(20)]
        if how == "deleted":
            wal.unlink()
        else:
            other = tmp_path / "other"
            other.write_bytes(b"not a WAL" * 1000)
            other.rename(wal)
        # Before: every write was answered OK, health stayed SERVING, and a SIGKILL lost every
        # write not yet checkpointed, acknowledged before the deletion or after.
        for _ in range(20):
            e = rpc_error(c.work_order, wf)
            assert (e.code(), details(e)[0].reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_FILE_GONE")
            assert f"-wal file {wal} was {'deleted or renamed' if how == 'deleted' else 'replaced'}" in (e.details() or "")
        assert eventually(lambda: _health(c) == NOT_SERVING)
        assert eventually(lambda: any(entry.get("level") == "error" and "writes refused" in entry["message"]
                                      and "-wal" in entry["message"] for entry in server.log_entries()))
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=acknowledged[-1]))
        assert got.work_order.id == acknowledged[-1]  # reads go on
    finally:
        c.close()
        server.kill()
    created, ids = _after_a_restart(server, wf)
    assert ids == {*acknowledged, created}


def _after_a_restart(server: ServerProcess, wf: Workflow) -> tuple[str, set[str]]:
    """Restarts the server, creates a work order, stops it: that work order's id, and those of
    every work order in the file (whose integrity is checked)."""
    server.restart()
    c = Client(server.address)
    try:
        assert _health(c) == SERVING
        created = c.work_order(wf).work_order.id
    finally:
        c.close()
        server.stop()
    with sqlite3.connect(server.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return created, {row[0] for row in conn.execute("SELECT id FROM work_orders")}


class WalGoneDuringCommit(SqliteStore):
    """Its -wal is deleted right after the check before the COMMIT has passed."""

    def _file_fault(self) -> str:
        fault = super()._file_fault()
        if not fault and os.path.exists(f"{self.path}-wal"):
            os.unlink(f"{self.path}-wal")
        return fault


def test_a_wal_deleted_during_the_commit_is_not_acknowledged_and_its_write_reaches_the_file(
        tmp_path: pathlib.Path) -> None:
    db = tmp_path / "runstatus.db"

    async def scenario() -> None:
        store = WalGoneDuringCommit(str(db))
        await store.start()
        with pytest.raises(DatabaseFileGone, match="-wal file .* deleted .* may or may not have been saved"):
            await store.write(lambda tx: tx.conn.execute("CREATE TABLE probe (k TEXT)"))
        # The COMMIT went into the deleted -wal: the checkpoint after it copied it into the
        # database file, where a restart (which sees no -wal: a copy of the file alone) finds it.
        shutil.copy(db, tmp_path / "alone.db")
        await store.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    with sqlite3.connect(tmp_path / "alone.db") as conn:
        assert conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 0


def test_a_truncated_shm_kills_the_server_and_a_restart_loses_nothing(tmp_path: pathlib.Path) -> None:
    """SQLite reads and writes the -shm through a memory mapping it makes once: past the end of
    a truncated file, any touch is a SIGBUS, which no check can forestall (see engine.py)."""
    db = tmp_path / "runstatus.db"
    server = ServerProcess(db).start()
    c = Client(server.address)
    wf = c.workflow(["a"])
    acknowledged: list[str] = []

    def create() -> None:
        try:
            while True:
                acknowledged.append(c.work_order(wf).work_order.id)
        except grpc.RpcError:
            pass  # the server died under the write

    writer = threading.Thread(target=create)
    writer.start()
    try:
        assert eventually(lambda: len(acknowledged) >= 20)
        os.truncate(f"{db}-shm", 0)
        assert server.proc is not None
        assert server.proc.wait(20) == -signal.SIGBUS
        writer.join(20)
        assert eventually(lambda: any("Fatal Python error: Bus error" in entry["message"]
                                      for entry in server.log_entries()))
    finally:
        c.close()
        server.stop()
    created, ids = _after_a_restart(server, wf)
    assert {*acknowledged, created} <= ids  # and perhaps the write the server died under
