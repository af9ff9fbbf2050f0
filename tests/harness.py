"""A real runstatus server in a subprocess, on a real port, and stubs to talk to it."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from runstatus.v1 import (
    classifier_service_pb2_grpc,
    project_service_pb2_grpc,
    work_order_service_pb2_grpc,
    worker_service_pb2_grpc,
    workflow_service_pb2_grpc,
)
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import worker_service_pb2 as worker_pb
from runstatus.v1 import work_order_service_pb2 as wo_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.error_pb2 import ErrorReport, ErrorSource
from runstatus.v1.project_pb2 import Project
from runstatus.v1.workflow_pb2 import Edge, EdgeCondition, Step, Workflow

ALWAYS = EdgeCondition.EDGE_CONDITION_ALWAYS
ON_SUCCESS = EdgeCondition.EDGE_CONDITION_ON_SUCCESS
ON_FAILURE = EdgeCondition.EDGE_CONDITION_ON_FAILURE
EXPRESSION = EdgeCondition.EDGE_CONDITION_EXPRESSION
JOB = ErrorSource.ERROR_SOURCE_JOB
RUNTIME = ErrorSource.ERROR_SOURCE_RUNTIME


# The backend of the servers the tests start: RUNSTATUS_TEST_DB=sqlite (the default) or postgres.
BACKEND = os.environ.get("RUNSTATUS_TEST_DB", "sqlite").strip().lower() or "sqlite"
if BACKEND not in ("sqlite", "postgres"):
    raise ValueError(f"RUNSTATUS_TEST_DB={BACKEND!r}: sqlite or postgres")
ON_POSTGRES = BACKEND == "postgres"
_databases: dict[pathlib.Path, str] = {}


def postgres_script() -> Any:
    """scripts/postgres.py as a module (a script, not a package of the project)."""
    name = "runstatus_scripts_postgres"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).resolve().parent.parent / "scripts" / "postgres.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def free_port() -> int:
    """A loopback port nothing listens on now (for a server's --metrics-port or --web-port),
    outside the ephemeral range that outgoing connections take theirs from."""
    return int(postgres_script().free_port())


def scrape(metrics_port: int) -> str:
    """The Prometheus text a server serves on its --metrics-port."""
    return str(urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode())


def rss_kib(pid: int) -> dict[str, int]:
    """A process's memory in KiB from /proc/<pid>/status: VmRSS (resident now), VmHWM (its peak
    since start, or since "5" was written to /proc/<pid>/clear_refs), ..."""
    lines = pathlib.Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if v.strip().endswith("kB")}


def eventually(check: Callable[[], Any], what: str = "the condition held", timeout: float = 10.0) -> Any:
    """check()'s first true value, asked every 50 ms; fails saying `what` did not happen in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def until_quiet(stream: Any, quiet: float = 1.0, first: float = 30.0) -> list[Any]:
    """What a watch stream (a call made with a generous deadline) sends until none came for
    `quiet` seconds (`first` for the first), then the stream cancelled. A short deadline on the
    whole call instead would cut a backlog short wherever a slow machine is slow to send it."""
    got: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for item in stream:
                got.put(item)
        except BaseException as e:  # noqa: BLE001 - the caller raises it
            got.put(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    items: list[Any] = []
    try:
        while True:
            try:
                item = got.get(timeout=quiet if items else first)
            except queue.Empty:
                return items
            if isinstance(item, BaseException):
                raise item
            items.append(item)
    finally:
        stream.cancel()
        reader.join(10)


def db_arg(db: pathlib.Path | str) -> str:
    """The --db of a server whose database a test names by a file path: that file on SQLite;
    under RUNSTATUS_TEST_DB=postgres, a fresh database of the session's PostgreSQL (tests/pg.py),
    the same one each time for the same path (a server restarted finds its data). A --db
    given as a string (a URL) is used as it is."""
    if not ON_POSTGRES or not isinstance(db, pathlib.Path):
        return str(db)
    key = db.resolve()
    if key not in _databases:
        import pg  # tests/pg.py: only the postgres runs start a PostgreSQL

        _databases[key] = pg.session_postgres().create_database(f"s_{uuid.uuid4().hex[:12]}")
    return _databases[key]


def offline_admin_token(db: pathlib.Path) -> str:
    """The secret of an instance admin token written straight into the database of a server
    to come (`db` as ServerProcess takes it): `runstatus tokens create --db FILE`. Under
    RUNSTATUS_TEST_DB=postgres, the function that command calls, with the database's URL: the
    command takes --db as a file path, which mangles a URL (test_postgres_servers.py holds
    that as a known failure)."""
    if ON_POSTGRES:
        from runstatus.v1.token_pb2 import Role
        from runstatus_server.tokens import create_offline

        return create_offline(db_arg(db), "*", Role.ROLE_ADMIN, "")[1]
    made = subprocess.run(
        [str(pathlib.Path(sys.executable).with_name("runstatus")), "tokens", "create", "--db", str(db),
         "--role", "admin", "--for-project", "*", "--json"],
        capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["secret"])


def query(db: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of a server's database read from outside it: `db` is its --db (ServerProcess.db),
    an SQLite file or a PostgreSQL URL; `?` placeholders. (Text the PostgreSQL store escaped,
    strings holding NUL, comes back escaped.)"""
    if db.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(db) as conn:
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                    for row in conn.execute(sql.replace("?", "%s"), args)]  # type: ignore[arg-type]
    # closing: sqlite3's own context manager only commits, and an open reader holds the file shared.
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql, args).fetchall()


class ServerProcess:
    """`python -m runstatus_server serve` with its log in a file."""

    def __init__(self, db: pathlib.Path | str, *args: str, port: int = 0, log_dir: pathlib.Path | None = None) -> None:
        """`db`: a database file (under RUNSTATUS_TEST_DB=postgres, a database of its own in
        its stead: db_arg), or a --db given as it is (a postgresql:// URL), whose server logs
        go to `log_dir`."""
        self.path = db
        self.db = db_arg(db)
        self.args = list(args)
        self.port = port
        if isinstance(db, pathlib.Path):
            self.log_path = db.with_suffix(f".{uuid.uuid4().hex[:6]}.log")
        else:
            assert log_dir is not None, "a --db that is not a file needs a log_dir"
            self.log_path = log_dir / f"server.{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> ServerProcess:
        log = open(self.log_path, "ab")
        self._log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runstatus_server", "serve", "--port", str(self.port), "--db", self.db,
             *self.args],
            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.log_entries():
                if entry.get("message") == "listening":
                    self.port = int(entry["port"])
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"server did not start: {self.log_path.read_text()}")

    def log_entries(self) -> list[dict[str, Any]]:
        entries = []
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            for line in f.read().decode(errors="replace").splitlines():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    entries.append({"message": line})
        return entries

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        # Generous: on a loaded 2-core machine a clean stop has been seen to take over 20 s.
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # The server dumps its threads' stacks into its log when a stop runs late: show them.
            self.proc.kill()
            self.proc.wait()
            tail = self.log_path.read_text(errors="replace")[-60_000:]
            raise AssertionError(f"the server did not stop within {timeout} s; its log ends:\n{tail}") from None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        return self.start()


class Client:
    """The generated stubs on one channel."""

    def __init__(self, address: str, project_id: str = "") -> None:
        # Scenarios run in a project of their own, so claims never take another test's runs.
        self.project_id = project_id
        self._claimed: dict[str, worker_pb.ClaimedRun] = {}
        self.channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.classifier = classifier_service_pb2_grpc.ClassifierServiceStub(self.channel)
        self.workflows = workflow_service_pb2_grpc.WorkflowServiceStub(self.channel)
        self.projects = project_service_pb2_grpc.ProjectServiceStub(self.channel)
        self.work_orders = work_order_service_pb2_grpc.WorkOrderServiceStub(self.channel)
        self.worker = worker_service_pb2_grpc.WorkerServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def new_project(self, **kw: Any) -> str:
        project_id = f"p-{uuid.uuid4().hex[:10]}"
        self.projects.CreateProject(project_pb.CreateProjectRequest(project=Project(id=project_id, **kw)))
        self.project_id = project_id
        return project_id

    # Shortcuts for scenarios
    def workflow(self, steps: list[str], edges: list[tuple[str, str, int]] = (), project_id: str = "", wid: str = "") -> Workflow:  # type: ignore[assignment]
        workflow = Workflow(
            id=wid or f"wf-{uuid.uuid4().hex[:8]}", project_id=project_id or self.project_id,
            steps=[Step(id=s, name=s) for s in steps],
            edges=[Edge(source_step_id=a, target_step_id=b, condition=c, expression="x" if c == EXPRESSION else "")
                   for a, b, c in edges],
        )
        return self.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(workflow=workflow)).workflow

    def work_order(self, workflow: Workflow, input_: dict[str, Any] | None = None, **kw: Any) -> wo_pb.CreateWorkOrderResponse:
        struct = Struct()
        struct.update(input_ or {"patient": 123})
        return self.work_orders.CreateWorkOrder(
            wo_pb.CreateWorkOrderRequest(project_id=workflow.project_id, workflow_id=workflow.id, input=struct, **kw)
        )

    def claim(self, project_id: str | None = None, worker_id: str = "worker-1", max_runs: int = 1) -> list[worker_pb.ClaimedRun]:
        return list(self.worker.ClaimRuns(
            worker_pb.ClaimRunsRequest(project_id=self.project_id if project_id is None else project_id, worker_id=worker_id, max_runs=max_runs)
        ).runs)

    def claim_run(self, run_id: str, project_id: str | None = None) -> "Lease":
        """Claims one run at a time until the given run is handed out; runs claimed on the
        way are kept for later calls (claims go oldest first, as scenarios create them)."""
        if run_id in self._claimed:
            return Lease(self, self._claimed.pop(run_id))
        for _ in range(1000):
            claimed = self.claim(project_id, max_runs=1)
            if not claimed:
                break
            if claimed[0].run.id == run_id:
                return Lease(self, claimed[0])
            self._claimed[claimed[0].run.id] = claimed[0]
        raise AssertionError(f"run {run_id} was not handed out")


class Lease:
    """A claimed run, and the reports a worker makes on it."""

    def __init__(self, client: Client, claimed: worker_pb.ClaimedRun) -> None:
        self.c = client
        self.claimed = claimed
        self.run_id = claimed.run.id
        self.token = claimed.lease_token

    def start(self, **kw: Any) -> Any:
        return self.c.worker.StartRun(worker_pb.StartRunRequest(run_id=self.run_id, lease_token=self.token, **kw)).run

    def step(self, step_id: str, after: str = "", **kw: Any) -> Any:
        return self.c.worker.StartStep(worker_pb.StartStepRequest(
            run_id=self.run_id, lease_token=self.token, step_id=step_id, previous_step_run_id=after, **kw)).step_run

    def done(self, step_run_id: str, error: ErrorReport | None = None, **kw: Any) -> worker_pb.CompleteStepResponse:
        return self.c.worker.CompleteStep(worker_pb.CompleteStepRequest(
            run_id=self.run_id, lease_token=self.token, step_run_id=step_run_id, error=error, **kw))

    def complete(self, error: ErrorReport | None = None, **kw: Any) -> Any:
        return self.c.worker.CompleteRun(worker_pb.CompleteRunRequest(
            run_id=self.run_id, lease_token=self.token, error=error, **kw)).run

    def heartbeat(self) -> worker_pb.HeartbeatResponse:
        return self.c.worker.Heartbeat(worker_pb.HeartbeatRequest(run_id=self.run_id, lease_token=self.token))


def error(name: str, source: int = JOB, **kw: Any) -> ErrorReport:
    return ErrorReport(name=name, source=source, message=kw.pop("message", f"a {name}"), **kw)


def rpc_error(call: Any, *args: Any, **kw: Any) -> grpc.RpcError:
    try:
        call(*args, **kw)
    except grpc.RpcError as e:
        return e
    raise AssertionError("the call succeeded; an error was expected")


def details(e: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, list[tuple[str, str]]]:
    """The ErrorInfo and the BadRequest field violations of an error."""
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    assert status is not None, f"no google.rpc.Status details in {e}"
    info = error_details_pb2.ErrorInfo()
    violations: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
    return info, violations


def fields(e: grpc.RpcError) -> list[str]:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
    return [f for f, _ in details(e)[1]]


@contextmanager
def running_server(tmp: pathlib.Path, *args: str) -> Iterator[tuple[ServerProcess, Client]]:
    server = ServerProcess(tmp / "runstatus.db", *args).start()
    client = Client(server.address)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()
