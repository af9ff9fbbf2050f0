"""The space that deletes free comes back to the file system (issue 29, item 3), SQLite: a new
database takes incremental auto-vacuum and the sweeping server gives freed pages back in steps;
an older file is converted once by `runstatus vacuum`, with its servers stopped."""

from __future__ import annotations

import os
import pathlib
import sqlite3
import subprocess
import sys

import pytest
from runstatus.v1 import work_order_service_pb2 as wo_pb

from harness import ON_POSTGRES, Client, ServerProcess, eventually, query

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="sqlite only: the database file's pages")
RUNSTATUS = str(pathlib.Path(sys.executable).with_name("runstatus"))


def pages(db: pathlib.Path) -> tuple[int, int, int]:
    """(auto_vacuum, page_count, freelist_count) as the committed database has them."""
    return (query(str(db), "PRAGMA auto_vacuum")[0][0], query(str(db), "PRAGMA page_count")[0][0],
            query(str(db), "PRAGMA freelist_count")[0][0])


def vacuum(db: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNSTATUS, "vacuum", "--db", str(db)], capture_output=True, text=True, timeout=120)


def test_pages_freed_by_deletes_go_back_to_the_file_system(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "space.db"
    server = ServerProcess(db, "--sweep-seconds", "0.2").start()
    client = Client(server.address)
    workflow = client.workflow(["a"], project_id="default")
    kept = {client.work_order(workflow, {"blob": os.urandom(150_000).hex()}).work_order.id for _ in range(10)}
    for _ in range(30):
        client.work_order(workflow, {"blob": os.urandom(150_000).hex(), "drop": True})
    client.close()
    server.stop()
    mode, grown, _ = pages(db)
    assert mode == 2, "a new database does not give freed pages back (auto_vacuum INCREMENTAL)"
    conn = sqlite3.connect(db, isolation_level=None)  # what pruning does to work orders
    conn.execute("DELETE FROM work_orders WHERE id NOT IN (%s)" % ",".join("?" * len(kept)), tuple(kept))
    conn.close()
    assert pages(db)[2] > grown / 2  # freed, and still the file's

    server = ServerProcess(db, "--sweep-seconds", "0.2").start()
    client = Client(server.address)
    try:
        # Given back in steps by the sweeping server: the file's pages fall to about a third.
        # A tenth of the file stays free, for the writers to reuse.
        _, shrunk, free = eventually(lambda: (p := pages(db))[1] < grown * 0.4 and p[2] <= p[1] // 10 + 1 and p,
                                     "freed pages were given back", timeout=30)
        steps = eventually(lambda: [e["pages"] for e in server.log_entries()
                                    if e.get("message") == "database pages given back to the file system"],
                           "the pages given back were logged")
        assert abs(sum(steps) - (grown - shrunk)) < 50  # what was given back (the server wrote a few pages too)
        listed = client.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(project_id="default", page_size=100))
        assert {w.id for w in listed.work_orders} == kept
        assert query(str(db), "PRAGMA integrity_check") == [("ok",)]
    finally:
        client.close()
        server.stop()


def test_an_older_file_is_converted_once_with_its_servers_stopped(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "old.db"
    server = ServerProcess(db).start()
    client = Client(server.address)
    workflow = client.workflow(["a"], project_id="default")
    made = {client.work_order(workflow).work_order.id for _ in range(5)}
    client.close()
    server.stop()
    conn = sqlite3.connect(db, isolation_level=None)  # as runstatus made files before
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")
    conn.close()
    assert pages(db)[0] == 0

    server = ServerProcess(db).start()
    refused = vacuum(db)
    assert refused.returncode == 1 and "in use" in refused.stderr
    server.stop()
    done = vacuum(db)
    assert done.returncode == 0 and "rewrote" in done.stderr, done.stderr
    assert pages(db)[0] == 2
    assert query(str(db), "PRAGMA integrity_check") == [("ok",)]
    again = vacuum(db)
    assert again.returncode == 0 and "nothing to do" in again.stderr

    server = ServerProcess(db).start()
    client = Client(server.address)
    try:
        listed = client.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(project_id="default", page_size=100))
        assert {w.id for w in listed.work_orders} == made
    finally:
        client.close()
        server.stop()
