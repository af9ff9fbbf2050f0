"""Archives and exports (issue 29, items 4 and 5), on the backend the tests run on: a server makes
the work orders over gRPC, then `runstatus export` reads them from its --db and `runstatus archive`
checks and reads back what the Archiver wrote of them.

- An export is every work order with its runs and step runs (and events), each part equal, as
  json_format prints it, to what GetWorkOrder and ListRuns answer (and to the event log).
- Its filters select what the same filter over the served work orders does.
- Cut short (--limit) and resumed from the cursor it printed, it writes the rest exactly once.
- The pruner's hook reads a batch in a store transaction as the export writes it, and archives it.
- An archive verifies; a byte flipped in a file or a manifest, a file gone, a file without its
  manifest, each fails verify naming the file; show reads it back.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1.event_pb2 import Event
from runstatus.v1.work_order_pb2 import WorkOrder

from harness import ON_FAILURE, ON_SUCCESS, Client, ServerProcess, error, query
from runstatus_server.archive import ArchivedWorkOrder, Archiver, DirectorySink
from runstatus_server.archive.pruning import pruner_archive, read_records

RUNSTATUS = str(pathlib.Path(sys.executable).with_name("runstatus"))
OUTPUT = {"rows": [1, 2.5, None, True, "é ✓"], "nested": {"k": "v", "empty": {}}, "n": -3}


def runstatus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUNSTATUS, *args], capture_output=True, text=True, timeout=120)


def as_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class Data:
    """The work orders a server made: two projects, every kind of ending, retries, outputs."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.db = server.db
        self.client = Client(server.address)
        self.a = self.client.new_project()
        flow = self.client.workflow(["a", "b", "c"], [("a", "b", ON_SUCCESS), ("a", "c", ON_FAILURE)])
        self.flow_a = flow.id
        self.ids_a = []
        for i in range(16):
            order = self.client.work_order(flow, {"patient": i, "tags": ["x", i], "note": None}).work_order
            self.ids_a.append(order.id)
        for i, work_order_id in enumerate(self.ids_a):
            run = self.client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id)).work_order
            if i % 4 == 1:  # SUCCESS through a and b, with outputs
                lease = self.client.claim_run(run.latest_run_id)
                lease.start()
                a = lease.step("a")
                lease.done(a.id, output=_struct(OUTPUT))
                b = lease.step("b", after=a.id)
                lease.done(b.id)
                lease.complete()
            elif i % 4 == 2:  # FAILED (a TypeError nothing handled), half of them retried
                lease = self.client.claim_run(run.latest_run_id)
                lease.start()
                a = lease.step("a")
                lease.done(a.id, error("TypeError", stack="at a.js:1"))
                lease.complete()
                if i % 8 == 2:
                    self.client.work_orders.RetryWorkOrder(wo_pb.RetryWorkOrderRequest(work_order_id=work_order_id))
            elif i % 4 == 3:
                self.client.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=run.latest_run_id, reason="test"))
        self.client.project_id = ""
        self.b = self.client.new_project()
        flow_b = self.client.workflow(["x"])
        self.ids_b = [self.client.work_order(flow_b).work_order.id for _ in range(6)]

    def served(self, work_order_id: str) -> tuple[WorkOrder, list[Any]]:
        """GetWorkOrder's work order and ListRuns' runs (oldest first, with their step runs)."""
        wo = self.client.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=work_order_id)).work_order
        runs, token = [], ""
        while True:
            page = self.client.work_orders.ListRuns(
                wo_pb.ListRunsRequest(work_order_id=work_order_id, page_size=100, page_token=token))
            runs += page.runs
            if not (token := page.next_page_token):
                return wo, sorted(runs, key=lambda r: r.number)

    def events(self, work_order_id: str) -> list[Event]:
        found = []
        for seq, data in query(self.db, "SELECT seq, data FROM events WHERE work_order_id = ? ORDER BY seq",
                               work_order_id):
            event = Event.FromString(bytes(data))
            event.sequence = int(seq)
            found.append(event)
        return found


def _struct(value: dict[str, Any]) -> Any:
    from google.protobuf.struct_pb2 import Struct

    struct = Struct()
    struct.update(value)
    return struct


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    # Leases that outlast the module: claims hand out the older pending runs on the way to the one
    # asked for (harness.Client.claim_run), and on a loaded machine their leases expired mid-test,
    # making them LOST between a test's reading of them and its export.
    server = ServerProcess(tmp_path_factory.mktemp("export") / "runstatus.db", "--lease-seconds", "3600").start()
    made = Data(server)
    try:
        yield made
    finally:
        made.client.close()
        server.stop()


def export(data: Data, *args: str) -> tuple[list[dict[str, Any]], str]:
    """The lines of `runstatus export --db DB ARGS`, parsed, and its stderr."""
    done = runstatus("export", "--db", data.db, *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def cursor(stderr: str) -> str:
    found = re.search(r"^cursor: (\d+)", stderr, re.M)
    assert found, stderr
    return found.group(1)


def test_an_export_is_what_the_api_answers(data: Data) -> None:
    lines, stderr = export(data, "--events", "--batch-size", "5")
    mine = [line for line in lines if line["work_order"]["project_id"] in (data.a, data.b)]
    assert [line["work_order"]["id"] for line in mine] == data.ids_a + data.ids_b  # in the order they were made
    for line in mine:
        wo, runs = data.served(line["work_order"]["id"])
        # json_format's JSON of what the API answers: the fast path writes the same.
        assert line["work_order"] == as_json(wo)
        assert line["runs"] == [as_json(r) for r in runs]
        assert line["events"] == [as_json(e) for e in data.events(wo.id)] and line["events"]
        record = ArchivedWorkOrder.parse(json.dumps(line))  # and json_format reads it back
        assert record.work_order == wo and record.runs == runs
    every = {line["work_order"]["status"] for line in mine}
    assert {"RUN_STATUS_SUCCESS", "RUN_STATUS_FAILED", "RUN_STATUS_CANCELLED", "RUN_STATUS_PENDING"} <= every
    assert any(len(line["runs"]) == 2 for line in mine) and any(r.get("step_runs") for line in mine for r in line["runs"])
    assert f"exported: {len(lines)} work orders" in stderr.replace(",", "")


def test_filters_select_what_they_say(data: Data) -> None:
    served = {i: data.served(i)[0] for i in data.ids_a + data.ids_b}

    def ids(*args: str) -> list[str]:
        return [line["work_order"]["id"] for line in export(data, *args)[0]]

    assert ids("--project", data.b) == data.ids_b
    assert ids("--project", data.a, "--project", data.b) == data.ids_a + data.ids_b
    assert ids("--project", data.a, "--workflow", data.flow_a) == data.ids_a
    assert ids("--workflow", "no-such-workflow") == []
    failed = [i for i in data.ids_a if served[i].status == 4]  # RUN_STATUS_FAILED
    assert failed and ids("--project", data.a, "--status", "failed") == failed
    ended = [i for i in data.ids_a if served[i].status in (3, 6)]  # SUCCESS, CANCELLED
    assert ids("--project", data.a, "--status", "SUCCESS", "--status", "run_status_cancelled") == ended
    middle = served[data.ids_a[8]]
    since = middle.create_time.ToJsonString()
    assert ids("--project", data.a, "--created-after", since) == data.ids_a[8:]
    assert ids("--project", data.a, "--created-before", since) == data.ids_a[:8]
    changed = middle.update_time.ToJsonString()
    assert ids("--project", data.a, "--updated-before", changed) == [
        i for i in data.ids_a if served[i].update_time.ToMicroseconds() < middle.update_time.ToMicroseconds()]
    assert ids("--project", data.a, "--updated-after", changed) == [
        i for i in data.ids_a if served[i].update_time.ToMicroseconds() >= middle.update_time.ToMicroseconds()]
    bad = runstatus("export", "--db", data.db, "--status", "sleeping")
    assert bad.returncode == 2 and "not a run status" in bad.stderr
    bad = runstatus("export", "--db", data.db, "--created-after", "yesterday")
    assert bad.returncode == 2 and "not a date or time" in bad.stderr


def test_an_export_resumed_from_its_cursor_writes_the_rest_exactly_once(data: Data) -> None:
    whole, _ = export(data, "--project", data.a)
    parts, after = [], "0"
    for _ in range(10):
        lines, stderr = export(data, "--project", data.a, "--after", after, "--limit", "5", "--batch-size", "2")
        parts += lines
        after = cursor(stderr)
        if len(lines) < 5:
            break
    assert parts == whole and len(whole) == 16
    rest, stderr = export(data, "--project", data.a, "--after", after)
    assert rest == [] and cursor(stderr) == after  # nothing new: the cursor stays


def archive_of(data: Data, directory: pathlib.Path) -> list[ArchivedWorkOrder]:
    """The server's work orders of project a, archived by the Archiver in two batches (as the
    pruner would), read for it through an export with events."""
    lines, _ = export(data, "--project", data.a, "--events")
    records = [ArchivedWorkOrder.parse(json.dumps(line)) for line in lines]
    archiver = Archiver(DirectorySink(directory))
    manifests = archiver.write(records[:10]) + archiver.write(records[10:]) + archiver.write([])
    assert sum(m.work_orders for m in manifests) == 16
    return records


def test_an_archive_verifies_and_reads_back(data: Data, tmp_path: pathlib.Path) -> None:
    records = archive_of(data, tmp_path)
    files = sorted(tmp_path.rglob("*.ndjson.gz"))
    assert files and len(list(tmp_path.rglob("*.manifest.json"))) == len(files)
    assert not list(tmp_path.rglob("*.partial-*"))
    manifest = json.loads(files[0].with_name(files[0].name.replace(".ndjson.gz", ".manifest.json")).read_text())
    assert manifest["sha256"] and manifest["work_orders"] >= 1 and manifest["file"].endswith(files[0].name)

    ok = runstatus("archive", "verify", str(tmp_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    runs = sum(len(r.runs) for r in records)
    assert "ok:" in ok.stderr and "16 work orders" in ok.stderr and f"{runs} runs" in ok.stderr

    shown = runstatus("archive", "show", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    back = [ArchivedWorkOrder.parse(line) for line in shown.stdout.splitlines()]
    assert sorted((r.work_order.id, r.work_order.SerializeToString(deterministic=True)) for r in back) == sorted(
        (r.work_order.id, r.work_order.SerializeToString(deterministic=True)) for r in records)
    assert {r.work_order.id: r.runs for r in back} == {r.work_order.id: r.runs for r in records}
    assert {r.work_order.id: r.events for r in back} == {r.work_order.id: r.events for r in records}

    one = runstatus("archive", "show", str(tmp_path), "--work-order", records[5].work_order.id)
    assert [ArchivedWorkOrder.parse(line).work_order for line in one.stdout.splitlines()] == [records[5].work_order]
    assert runstatus("archive", "show", str(tmp_path), "--project", data.b).stdout == ""
    table = runstatus("archive", "show", str(tmp_path), "--project", data.a, "--table")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 17 and records[0].work_order.id in table.stdout


def test_verify_catches_a_flipped_byte_a_missing_file_and_an_orphan(data: Data, tmp_path: pathlib.Path) -> None:
    archive_of(data, tmp_path / "good")

    def damaged(change: Any) -> subprocess.CompletedProcess[str]:
        copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tmp_path / "good", copy)
        change(copy)
        return runstatus("archive", "verify", str(copy))

    def flip(path: pathlib.Path, at: int) -> None:
        data_ = bytearray(path.read_bytes())
        data_[at % len(data_)] ^= 0x01
        path.write_bytes(bytes(data_))

    first = lambda d, pattern: sorted(d.rglob(pattern))[0]  # noqa: E731
    size = first(tmp_path / "good", "*.ndjson.gz").stat().st_size
    for at in (0, 10, size // 2, size - 3):  # the header, the compressed lines, the trailer (CRC, size)
        result = damaged(lambda d: flip(first(d, "*.ndjson.gz"), at))
        assert result.returncode == 1, (at, result.stdout, result.stderr)
        assert "SHA-256 does not match" in result.stdout and first(tmp_path / "good", "*.ndjson.gz").name in result.stdout

    result = damaged(lambda d: flip(first(d, "*.manifest.json"), 40))
    assert result.returncode == 1 and ".manifest.json" in result.stdout, result.stdout

    result = damaged(lambda d: first(d, "*.ndjson.gz").unlink())
    assert result.returncode == 1 and "missing" in result.stdout

    result = damaged(lambda d: first(d, "*.manifest.json").unlink())
    assert result.returncode == 1 and "no manifest" in result.stdout

    def rewritten(d: pathlib.Path) -> None:  # a line that no longer parses, in a whole new gzip file
        path = first(d, "*.ndjson.gz")
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b'"runs"', b'"runs', 1)))

    result = damaged(rewritten)
    assert result.returncode == 1 and "does not parse" in result.stdout and "SHA-256" in result.stdout

    def renamed(d: pathlib.Path) -> None:  # still JSON, but a field name no message has (a flipped bit can do it)
        path = first(d, "*.ndjson.gz")
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b'"run_number"', b'"run_numbes"', 1)))

    result = damaged(renamed)
    assert result.returncode == 1 and "does not parse" in result.stdout and "has no field named" in result.stdout, result.stdout


def store_tx(db: str) -> tuple[Any, Any]:
    """A read transaction of the store's own rows on the server's database, as the pruner has."""
    if db.startswith("postgresql://"):
        import psycopg

        from runstatus_server.store.postgres.rows import PostgresTx

        conn = psycopg.connect(db)
        return PostgresTx(conn, writing=False), conn
    from runstatus_server.store.sqlite.engine import connect
    from runstatus_server.store.sqlite.rows import SqliteTx

    conn = connect(db, readonly=True)
    return SqliteTx(conn), conn


def test_the_pruners_hook_archives_a_batch_as_the_export_has_it(data: Data, tmp_path: pathlib.Path) -> None:
    exported = {line["work_order"]["id"]: ArchivedWorkOrder.parse(json.dumps(line))
                for line in export(data, "--project", data.a, "--events")[0]}
    tx, conn = store_tx(data.db)
    try:
        records = read_records(tx, [*data.ids_a[3:], "no-such-work-order"])
        assert [r.work_order.id for r in records] == data.ids_a[3:]
        for record in records:
            assert record == exported[record.work_order.id]
        pruner_archive(Archiver(DirectorySink(tmp_path)))(tx, data.ids_a[:7])
    finally:
        conn.close()
    ok = runstatus("archive", "verify", str(tmp_path))
    assert ok.returncode == 0 and "7 work orders" in ok.stderr, ok.stdout + ok.stderr
    shown = runstatus("archive", "show", str(tmp_path)).stdout.splitlines()
    assert sorted(ArchivedWorkOrder.parse(line).work_order.id for line in shown) == sorted(data.ids_a[:7])


def test_an_export_interrupted_mid_page_says_exactly_what_it_wrote(data: Data) -> None:
    """SIGTERM arrives while a page is being written: that page still goes out whole, the export
    stops, and the cursor it reports resumes with the next work order."""
    import io
    import os
    import signal

    from runstatus_server.export.batches import Source
    from runstatus_server.export.command import Interrupted, _interrupt, export as export_to
    from runstatus_server.export.filters import ExportFilter

    class SignalledOnThirdPage(io.BytesIO):
        writes = 0

        def write(self, data: Any) -> int:
            self.writes += 1
            if self.writes == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # held off until the page is written
            return super().write(data)

    whole, _ = export(data, "--project", data.a)
    out = SignalledOnThirdPage()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    source = Source.open(data.db)
    try:
        with pytest.raises(Interrupted) as stopped:
            export_to(source, ExportFilter(projects=[data.a]), out, batch_size=2, jobs=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
        source.close()
    counts = stopped.value.counts  # type: ignore[attr-defined]
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert counts["work_orders"] == len(written) == 6 and written == whole[:6]
    rest, _ = export(data, "--project", data.a, "--after", str(counts["cursor"]))
    assert written + rest == whole


def test_the_fast_json_path_writes_what_json_format_writes() -> None:
    """message_json against json_format on every kind of field: proto2 presence, int64 and
    uint64, bytes, doubles (left to json_format), unknown enum values, timestamps at each
    precision, Struct values of every kind, deep nesting (a whole file descriptor)."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.struct_pb2 import Struct, Value

    from runstatus.v1 import work_order_pb2
    from runstatus.v1.work_order_pb2 import Run
    from runstatus_server.archive.message_json import to_dict

    file = descriptor_pb2.FileDescriptorProto()
    work_order_pb2.DESCRIPTOR.CopyToProto(file)
    option = descriptor_pb2.UninterpretedOption(positive_int_value=2**63 + 5, negative_int_value=-2**62,
                                                double_value=-0.0, string_value=b"\x00\xffbytes", identifier_value="")
    option.name.add(name_part="x", is_extension=False)  # a proto2 bool set to its default: printed
    run = Run(id="r", status=99, number=3)  # 99: no such status, printed as the number
    for seconds, nanos in ((0, 0), (1715000000, 123000000), (1715000000, 123456000), (1715000000, 123456789),
                           (253402300799, 999999999)):
        run.create_time.seconds, run.create_time.nanos = seconds, nanos
        assert to_dict(run) == as_json(run)
    struct = Struct()
    struct.update({"s": "é ✓", "n": 1.5, "i": -3, "b": False, "null": None, "list": [1, [2, {"k": []}], None],
                   "obj": {"deep": {"deeper": True}}})
    event = Event(sequence=2**40, work_order_id="w")
    for message in (file, option, run, struct, Value(list_value=struct["list"]), event, Run()):
        assert to_dict(message) == as_json(message), type(message).__name__
