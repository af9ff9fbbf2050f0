"""The database file itself: deleted, renamed, replaced, newer, unwritable (issue 12, item 4).

A write committed into a file that is no longer at the server's path would be acknowledged,
then lost on restart: the server must notice, refuse, say so, and flip health.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Client, ServerProcess, details, free_port, rpc_error, scrape
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus_server.store.sqlite import migrations

pytestmark = pytest.mark.sqlite_only("the database file deleted, renamed, replaced or of a newer schema")

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING



def eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


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
        # Reads go on; a metrics scrape works and leaves no empty database at the path.
        got = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=acknowledged[0]))
        assert got.work_order.id == acknowledged[0]
        scraped = scrape(metrics_port)
        assert 'runstatus_work_orders{status="pending"} 5.0' in scraped
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
