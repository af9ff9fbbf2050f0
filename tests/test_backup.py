"""`runstatus backup` under write load and `runstatus restore` (issue 29, item 6), on the backend the
tests run on: the backup is the database exactly as it was at one point, so a server on the restored
copy answers as the source did then. That point is the backup's last event: every event up to it is
in the copy byte for byte (events are numbered in commit order on both backends), none after it, and
each work order's status is the one its last event there says."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import uuid

import pytest
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.event_pb2 import Event

from harness import ON_POSTGRES, Client, ServerProcess, error, query

RUNSTATUS = str(pathlib.Path(sys.executable).with_name("runstatus"))


def runstatus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNSTATUS, *args], capture_output=True, text=True, timeout=300)


class Load(threading.Thread):
    """Writes until stopped: work orders created, and of some, the runs claimed and ended FAILED or
    SUCCESS, so that the backup is taken among commits of every kind."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.client = Client(address)
        self.client.new_project()
        self.workflow = self.client.workflow(["a"])
        self.stop = threading.Event()
        self.writes = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                order = self.client.work_order(self.workflow)
                self.writes += 1
                if self.writes % 3 == 0:
                    lease = self.client.claim_run(order.run.id)
                    lease.start()
                    step = lease.step("a")
                    lease.done(step.id, error("TypeError") if self.writes % 2 else None)
                    self.writes += 3
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.failure = e
        finally:
            self.client.close()


def events(db: str) -> list[tuple[int, bytes]]:
    return [(int(seq), bytes(data)) for seq, data in query(db, "SELECT seq, data FROM events ORDER BY seq")]


def statuses_at(log: list[tuple[int, bytes]]) -> dict[str, int]:
    """Each work order's status after the last of its events in `log`."""
    status: dict[str, int] = {}
    for _, data in log:
        event = Event.FromString(data)
        status[event.work_order_id] = event.work_order_status
    return status


def served_statuses(address: str, project_id: str) -> dict[str, int]:
    client = Client(address, project_id)
    try:
        found, token = {}, ""
        while True:
            page = client.work_orders.ListWorkOrders(
                wo_pb.ListWorkOrdersRequest(project_id=project_id, page_size=500, page_token=token))
            found.update({w.id: w.status for w in page.work_orders})
            if not (token := page.next_page_token):
                return found
    finally:
        client.close()


def fresh_database() -> str:
    import pg  # tests/pg.py
    return str(pg.session_postgres().create_database(f"r_{uuid.uuid4().hex[:12]}"))


def test_a_backup_under_write_load_answers_as_the_source_did_at_its_point(tmp_path: pathlib.Path) -> None:
    server = ServerProcess(tmp_path / "source.db").start()
    load = Load(server.address)
    try:
        load.start()
        while load.writes < 150 and load.is_alive():
            threading.Event().wait(0.05)
        assert load.failure is None, load.failure
        backup = tmp_path / "backup.runstatus"
        made = runstatus("backup", str(backup), "--db", server.db)
        assert made.returncode == 0, made.stderr
        writes_during = load.writes
        threading.Event().wait(0.5)  # writes go on after the backup too: the copy must not have them
        assert load.writes > writes_during, "the writers were held up by the backup"
    finally:
        load.stop.set()
        load.join(60)
    assert load.failure is None, load.failure
    assert "backed up to" in made.stderr and "work orders" in made.stderr
    source_log = events(server.db)
    server.stop()

    target = fresh_database() if ON_POSTGRES else str(tmp_path / "restored.db")
    restored = runstatus("restore", str(backup), "--db", target)
    assert restored.returncode == 0, restored.stderr
    copy_log = events(target)
    point = copy_log[-1][0]
    assert copy_log == [e for e in source_log if e[0] <= point], "the copy is not the source's log up to its point"
    assert len(copy_log) < len(source_log), "no write came after the backup: the test proves nothing"

    copy = ServerProcess(target, log_dir=tmp_path).start() if ON_POSTGRES else ServerProcess(pathlib.Path(target)).start()
    try:
        expected = statuses_at(copy_log)
        assert served_statuses(copy.address, load.client.project_id) == expected
        assert len(expected) >= 100
    finally:
        copy.stop()


@pytest.mark.skipif(ON_POSTGRES, reason="sqlite only: the file a restore replaces")
def test_a_restore_refuses_a_database_in_use_and_keeps_the_one_it_replaces(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "live.db"
    server = ServerProcess(db).start()
    client = Client(server.address)
    client.new_project()
    workflow = client.workflow(["a"])
    first = client.work_order(workflow).work_order.id
    backup = tmp_path / "backup.runstatus"
    assert runstatus("backup", str(backup), "--db", str(db)).returncode == 0
    again = runstatus("backup", str(backup), "--db", str(db))
    assert again.returncode == 1 and "exists" in again.stderr  # never overwritten unasked
    second = client.work_order(workflow).work_order.id
    client.close()

    in_use = runstatus("restore", str(backup), "--db", str(db))
    assert in_use.returncode == 1 and "in use" in in_use.stderr
    assert not list(tmp_path.glob("live.db.replaced-*")), "a refused restore moved the database"
    server.stop()

    done = runstatus("restore", str(backup), "--db", str(db))
    assert done.returncode == 0, done.stderr
    [aside] = tmp_path.glob("live.db.replaced-*[0-9]")
    assert {w for (w,) in query(str(aside), "SELECT id FROM work_orders")} == {first, second}
    server = ServerProcess(db).start()
    try:
        assert set(served_statuses(server.address, client.project_id)) == {first}
    finally:
        server.stop()


@pytest.mark.skipif(ON_POSTGRES, reason="sqlite only: a file that is not a database")
def test_a_damaged_backup_is_refused_and_changes_nothing(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "live.db"
    server = ServerProcess(db).start()
    server.stop()
    backup = tmp_path / "backup.runstatus"
    assert runstatus("backup", str(backup), "--db", str(db)).returncode == 0
    data = bytearray(backup.read_bytes())
    page = 4096  # SQLite's default page size; page 3 holds a table's rows
    data[2 * page: 3 * page] = bytes(page)
    backup.write_bytes(bytes(data))
    before = db.read_bytes()
    refused = runstatus("restore", str(backup), "--db", str(db))
    assert refused.returncode == 1 and "cannot restore" in refused.stderr
    assert db.read_bytes() == before and not list(tmp_path.glob("*.partial"))

    nowhere = runstatus("backup", str(tmp_path / "missing" / "b.runstatus"), "--db", str(db))
    assert nowhere.returncode == 1 and "cannot back up" in nowhere.stderr
    assert not list(tmp_path.glob("**/*.partial"))

