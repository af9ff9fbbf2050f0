"""runstatus beside a bare grpc.aio server, under load from a real load generator.

Run it with `make bench` (which installs ghz and the `bench` extra), from the
repository root:

    make bench                                            # the side-by-side table
    make bench ARGS="--concurrency 1,16 --seconds 3"      # quicker, both backends
    make bench ARGS="--backends sqlite"                   # without PostgreSQL
    make bench ARGS="--concurrency 1,4,16 --seconds 3 --work-orders 100000"   # quicker
    make bench ARGS="--profile --no-table"                # py-spy profile only
    make bench ARGS="--profile --no-table --backends postgres"  # the same on PostgreSQL
    make bench ARGS="--soak 600 --no-table"               # memory soak only

What one invocation does:

1. Servers, all started once and idle while another is measured:
   - the baseline, scripts/baseline_server.py: grpc.aio set up as runstatus sets it
     up, answering Health/Check with no work behind it;
   - for each backend of --backends (default sqlite,postgres):
     - runstatus, one process, on a fresh database (the write workloads; Classify,
       which never touches the database, on the first backend only);
     - runstatus --processes 2 on another fresh database (the same workloads): two
       server processes on one database, sharing the port;
     - runstatus, one process, on a database of N work orders (default 1,000,000)
       for GetWorkOrder, ListWorkOrders and CountWorkOrders. The SQLite file is
       filled by scripts/bench_queries.py's fill and reused while it holds N; the
       PostgreSQL database is a copy of it (bench_queries.fill_postgres: COPY), so
       both backends answer the same requests about the same rows. Writes go to the
       fresh databases, so the big ones stay as they were made.
   PostgreSQL is a cluster of the script's own (scripts/postgres.py's LocalPostgres),
   in the work directory, with fsync on, as in production; each server gets a
   database of its own on it, and the cluster's CPU counts as the server's. It is
   removed at the end (stopped and kept with --keep).
2. For each concurrency level, each workload in turn, back to back, so a row's
   baseline was measured moments before it: an untimed warm-up, then a timed
   run of --seconds. Unary workloads are driven by ghz (--tool ghz, the
   default) or by the Go load generator clients/go/cmd/loadgen (--tool go);
   the worker lifecycle (CreateWorkOrder, ClaimRuns, StartRun, StartStep,
   CompleteStep, CompleteRun, each goroutine in its own project) always by the
   Go load generator. Each workload's ratio is to the baseline measured by the
   same tool at the same concurrency. Each simulated client has its own
   connection (up to --max-connections), so --processes 2 gets connections
   spread by the kernel (SO_REUSEPORT) as it would from many real clients.
3. Then bench_queries.py's reads (every List and Count filter) one at a time,
   --read-samples calls of each, on each backend's big database, the backends
   taking turns read by read.
4. Prints the table (RPC/s, p50, p99, x baseline, and where the CPU went), the
   PostgreSQL / SQLite and 2-processes / 1-process ratios, the reads one at a
   time and the targets, and writes docs/benchmark.md and docs/benchmark.png.

The machine may be shared (on a 2-core box another program's tests skew every
figure), so each point records the cores used meanwhile by the server, by the
load generator and by everything else ("other"). Before each point the script
waits (up to --quiet-wait s) for the others to go quiet, and a point during
which others used more than --busy-threshold cores is measured again (up to
--busy-retries times), keeping the quietest try; the table says how many
points stayed busy.

--watchers 0,100,500 measures CreateWorkOrder (the Go load generator, --watch-concurrency
clients) on a fresh runstatus process while W watch streams, held open by another process
(clients/go/cmd/watchers), receive every event; each W is reported as the ratio to W = 0
measured in the same run (before and after the others, averaged), with the delivery latency
from the change's time to its receipt (p50/p99), and the server's RSS with
--idle-watchers streams open that receive nothing, against none. Each W is measured twice:
unbatched (one event per message) and batched (--watch-batch events per message at most, an
event held back at most --watch-batch-delay ms; --watch-batch 0: unbatched only).

--soak SECONDS runs the mixed worker load (lifecycle + Heartbeat + Classify +
GetWorkOrder, a quarter of the steps failing) against one runstatus process and
samples its RSS; --profile runs py-spy on one runstatus process under the
CreateWorkOrder and lifecycle loads and prints the top functions. Each part
replaces only its own section of docs/benchmark.md.

ghz v0.93.0 cannot use runstatus's reflection (it asks for method symbols,
which Python's reflection service does not resolve) nor parse proto/ (it
predates proto3 `optional`), so this script gives it a protoset written from
the descriptors the server itself uses.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import random
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # bench_queries (which puts tests/ on the path for harness)

import psutil  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402
from grpc_health.v1 import health_pb2  # noqa: E402

import bench_queries  # noqa: E402
from harness import Client, free_port, scrape  # noqa: E402
from postgres import LocalPostgres, PostgresUnavailable  # noqa: E402
from runstatus.v1 import classifier_service_pb2, work_order_service_pb2  # noqa: E402

TOOLS = ROOT / ".tools" / "bin"
LOADGEN = TOOLS / "runstatus-loadgen"
WATCHERS = TOOLS / "runstatus-watchers"
DOCS = ROOT / "docs"
CREATE_WORKFLOW = "bench-create"  # the workflow ghz's CreateWorkOrder calls use

# Targets of issue 7.
WRITE_RATIO_TARGET = 0.9
PROCESSES_RATIO_TARGET = 1.6
LATENCY_TARGETS_MS = {"get": 2.0, "list": 10.0, "count": 50.0}  # p99
# PostgreSQL's (a "PostgreSQL backend" issue): a query is a round trip to another process.
POSTGRES_LATENCY_TARGETS_MS = {"get": 3.0, "list": 10.0, "count": 50.0}

# Each backend's runstatus servers: one process, two processes (--processes 2, on one database),
# and one process on the big database of the reads.
BACKENDS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
TARGETS = {"sqlite": ("rs1", "rs2", "rs-big"), "postgres": ("pg1", "pg2", "pg-big")}


# ---------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------

# The error reports Classify is asked about, in turn (the Go load generator uses the same).
ERROR_REPORTS = [
    {"name": "TypeError", "message": "Cannot read properties of undefined (reading 'id')",
     "language": "javascript", "source": "ERROR_SOURCE_JOB"},
    {"name": "KeyError", "message": "'email'", "language": "python", "source": "ERROR_SOURCE_JOB"},
    {"name": "java.lang.NullPointerException", "message": "patient is null", "language": "java",
     "source": "ERROR_SOURCE_JOB"},
    {"name": "runtime.Error", "message": "runtime error: index out of range [5] with length 2", "language": "go",
     "source": "ERROR_SOURCE_JOB"},
    {"name": "SomethingNobodyHeardOf", "message": "?", "source": "ERROR_SOURCE_RUNTIME"},
]


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    mode: str  # the Go load generator's -mode
    call: str = ""  # ghz --call; empty: the Go load generator only
    write: bool = False
    read: bool = False  # runs on the big database
    floor: bool = False  # served by the baseline server (its durable-INSERT CreateWorkOrder)


WORKLOADS = {w.key: w for w in [
    Workload("baseline", "Health/Check (bare grpc.aio)", "health", "grpc.health.v1.Health.Check"),
    Workload("floor", "CreateWorkOrder as one durable INSERT (bare grpc.aio)", "create",
             "runstatus.v1.WorkOrderService.CreateWorkOrder", floor=True),
    Workload("classify", "Classify", "classify", "runstatus.v1.ClassifierService.Classify"),
    Workload("create", "CreateWorkOrder", "create", "runstatus.v1.WorkOrderService.CreateWorkOrder", write=True),
    Workload("lifecycle", "Worker lifecycle (6 RPCs)", "lifecycle", write=True),
    Workload("get", "GetWorkOrder", "get", "runstatus.v1.WorkOrderService.GetWorkOrder", read=True),
    Workload("list", "ListWorkOrders FAILED, 50", "list", "runstatus.v1.WorkOrderService.ListWorkOrders", read=True),
    Workload("count", "CountWorkOrders", "count", "runstatus.v1.WorkOrderService.CountWorkOrders", read=True),
]}


def ghz_data(key: str, ids: list[str]) -> Any:
    """The request(s) ghz sends; a list is sent round-robin."""
    if key == "classify":
        return [{"error": report} for report in ERROR_REPORTS]
    if key == "create":
        return {"workflow_id": CREATE_WORKFLOW, "input": {"patient": 123, "source": "ghz"}}
    if key == "get":
        return [{"work_order_id": i} for i in ids]
    if key == "list":
        return {"filter": {"statuses": ["RUN_STATUS_FAILED"]}, "page_size": 50}
    return {}


def write_protoset(path: pathlib.Path) -> None:
    """A FileDescriptorSet of the services ghz calls, from the descriptors the server uses."""
    files = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd: Any) -> None:
        if fd.name in seen:
            return
        for dep in fd.dependencies:
            add(dep)
        seen.add(fd.name)
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        files.file.append(proto)

    for module in (health_pb2, classifier_service_pb2, work_order_service_pb2):
        add(module.DESCRIPTOR)
    path.write_bytes(files.SerializeToString())


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

RUNNING: list[Server] = []  # every server started and not yet stopped (their CPU is not "other")


class Server:
    """A server process that logs a JSON "listening" line with its port."""

    def __init__(self, name: str, cmd: list[str], log_path: pathlib.Path) -> None:
        self.name, self.cmd, self.log_path = name, cmd, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.database: LocalPostgres | None = None  # its PostgreSQL, whose CPU counts as the server's
        self.dbname = ""  # its database there
        self.env: dict[str, str] = {}  # set in its environment

    def start(self, timeout: float = 900) -> Server:
        # Generous: on first start runstatus migrates the big database.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, cwd=ROOT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("message") == "listening" and entry.get("port"):
                    self.port = int(entry["port"])
                    RUNNING.append(self)
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def processes(self) -> list[psutil.Process]:
        """The server and its children (runstatus --processes N forks N servers)."""
        assert self.proc is not None
        try:
            me = psutil.Process(self.proc.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_by_process(self) -> dict[int, float]:
        """CPU seconds of each process of the server so far."""
        return cpu_seconds(self.processes())

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} died (exit {self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --server-src: a checkout whose server (and client library) the runstatus servers run instead
# of this one's, for an A/B of two commits measured by the same benchmark.
SERVER_PATH: list[str] = []


def runstatus_server(name: str, db: pathlib.Path | str, logs: pathlib.Path, *args: str) -> Server:
    server = Server(name, [sys.executable, "-m", "runstatus_server", "serve", "--port", "0", "--db", str(db), *args],
                    logs / f"{name}.log")
    server.env = {"PYTHONPATH": os.pathsep.join(SERVER_PATH)} if SERVER_PATH else {}
    return server


DATABASES: list[LocalPostgres] = []  # the PostgreSQL clusters started (their CPU is not "other")


def start_postgres(work: pathlib.Path) -> LocalPostgres:
    """A PostgreSQL cluster of its own in the work directory, with fsync on, as in production."""
    work.chmod(0o711)  # run as root, PostgreSQL runs as its own user, who must reach its folder
    try:
        pg = LocalPostgres(fsync=True, parent=str(work), stat_statements=True).start()
        pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except PostgresUnavailable as e:
        sys.exit(f"no PostgreSQL for the benchmark: {e} (or say --backends sqlite)")
    DATABASES.append(pg)
    return pg


def database_cpu(pg: LocalPostgres) -> dict[int, float]:
    """CPU seconds so far of each process of the cluster (the postmaster and its backends)."""
    try:
        with open(os.path.join(pg.data, "postmaster.pid")) as f:
            main = psutil.Process(int(f.readline()))
        return cpu_seconds([main, *main.children(recursive=True)])
    except (OSError, ValueError, psutil.NoSuchProcess):
        return {}


def statements_so_far(server: Server) -> int | None:
    """Statements the server's PostgreSQL database ran so far, BEGIN and COMMIT included
    (pg_stat_statements, which start_postgres loads); None on SQLite."""
    if server.database is None or not server.dbname:
        return None
    found = server.database.psql(
        "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
        f"WHERE d.datname = '{server.dbname}'")
    return int(found or 0)


def cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
    seconds = {}
    for p in procs:
        try:
            t = p.cpu_times()
            seconds[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return seconds


def baseline_server(logs: pathlib.Path, processes: int = 1) -> Server:
    """The bare server; one process also serves the floor (a durable INSERT into floor.db)."""
    name, extra = (("baseline", ["--db", str(logs / "floor.db")]) if processes == 1
                   else (f"baseline{processes}", ["--processes", str(processes)]))
    return Server(name, [sys.executable, str(ROOT / "scripts" / "baseline_server.py"), "--port", "0", *extra],
                  logs / f"{name}.log")


# ---------------------------------------------------------------------------
# Load generators
# ---------------------------------------------------------------------------

@dataclass
class Result:
    workload: str
    target: str  # baseline, rs1, rs2, rs-big
    concurrency: int
    tool: str
    rps: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    server_cpu: float = 0.0  # cores
    loadgen_cpu: float = 0.0  # cores
    other_cpu: float = 0.0  # cores used by anything else on the machine meanwhile
    extra: dict[str, Any] = field(default_factory=dict)


def build_loadgen() -> None:
    print("building the Go load generator (clients/go/cmd/loadgen)", flush=True)
    TOOLS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(LOADGEN), "./cmd/loadgen"], cwd=ROOT / "clients" / "go", check=True)
    subprocess.run(["go", "build", "-o", str(WATCHERS), "./cmd/watchers"], cwd=ROOT / "clients" / "go", check=True)


def run_ghz(call: str, data: Any, address: str, concurrency: int, seconds: float, connections: int,
            files: pathlib.Path) -> dict[str, Any]:
    data_file = files / f"data-{abs(hash(json.dumps(data, sort_keys=True)))}.json"
    if not data_file.exists():
        data_file.write_text(json.dumps(data))
    cmd = [
        "ghz", "--insecure", "--protoset", str(files / "runstatus.protoset"), "--call", call,
        "--data-file", str(data_file), "-c", str(concurrency), "--connections", str(connections),
        "-z", f"{seconds}s", "--duration-stop", "ignore", "-t", "20s", "-O", "json", address,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"ghz failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    report = json.loads(out.stdout)
    codes = report.get("statusCodeDistribution") or {}
    ok = int(codes.get("OK", 0))
    total_s = report["total"] / 1e9
    latency = {int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    errors = {code: int(n) for code, n in codes.items() if code != "OK"}
    if report.get("errorDistribution"):
        print(f"    ghz errors: {json.dumps(report['errorDistribution'])[:300]}", flush=True)
    return {"ok": ok, "rps": ok / total_s if total_s else 0.0, "p50": latency.get(50, 0.0),
            "p99": latency.get(99, 0.0), "errors": errors}


def run_loadgen(mode: str, address: str, concurrency: int, seconds: float, warmup: float, connections: int,
                files: pathlib.Path, every: float = 0, on_progress: Any = None) -> dict[str, Any]:
    cmd = [str(LOADGEN), "-addr", address, "-mode", mode, "-c", str(concurrency), "-connections",
           str(connections), "-z", f"{seconds}s", "-warmup", f"{warmup}s"]
    if mode == "get":
        cmd += ["-ids", str(files / "ids.txt")]
    if every:
        cmd += ["-every", f"{every}s"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    complaints = []
    for line in proc.stderr:  # progress lines (and the first error of each kind)
        try:
            progress = json.loads(line)
        except ValueError:
            complaints.append(line.rstrip())
            print(f"    {line.rstrip()}", flush=True)
            continue
        if on_progress is not None:
            on_progress(progress)
    out = proc.stdout.read()
    if proc.wait() != 0 or not out.strip():
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {' | '.join(complaints)}")
    report = json.loads(out)
    return {"ok": report["rpcs"], "rps": report["rps"], "p50": report["p50_ms"], "p99": report["p99_ms"],
            "errors": report.get("errors") or {}, "report": report}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)


def self_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def ours_cpu() -> float:
    """CPU seconds of this script, every server it runs and their PostgreSQL."""
    return (self_cpu() + sum(sum(s.cpu_by_process().values()) for s in RUNNING)
            + sum(sum(database_cpu(pg).values()) for pg in DATABASES))


def wait_for_quiet(args: argparse.Namespace) -> None:
    """Waits (up to --quiet-wait seconds) until other programs use less than
    --busy-threshold cores over a second: this machine may be shared."""
    deadline = time.monotonic() + args.quiet_wait
    while True:
        busy0, ours0, t0 = machine_busy(), ours_cpu(), time.monotonic()
        time.sleep(1.0)
        other = (machine_busy() - busy0 - (ours_cpu() - ours0)) / (time.monotonic() - t0)
        if other <= args.busy_threshold or time.monotonic() >= deadline:
            return


def measure(workload: Workload, server: Server, target: str, concurrency: int, tool: str,
            args: argparse.Namespace, files: pathlib.Path) -> Result:
    """One point. If something else on the machine took CPU meanwhile (another
    program's tests, say), the point is measured again, up to --busy-retries
    times, and the quietest try is kept."""
    tries = []
    for attempt in range(1 + args.busy_retries):
        wait_for_quiet(args)
        result = measure_once(workload, server, target, concurrency, tool, args, files)
        tries.append(result)
        if result.other_cpu <= args.busy_threshold:
            break
        print(f"    (c={concurrency} {target} {workload.key}: {result.other_cpu:.2f} cores busy elsewhere; "
              f"{'measuring again' if attempt < args.busy_retries else 'keeping the quietest try'})", flush=True)
    best = min(tries, key=lambda r: r.other_cpu)
    best.extra["tries"] = len(tries)
    return best


def measure_once(workload: Workload, server: Server, target: str, concurrency: int, tool: str,
                 args: argparse.Namespace, files: pathlib.Path) -> Result:
    """A warm-up, then a timed run, with the CPU each side used meanwhile."""
    server.check_alive()
    connections = min(concurrency, args.max_connections)
    use_ghz = tool == "ghz" and bool(workload.call)
    data = ghz_data(workload.key, files_ids(files)) if use_ghz else None
    if use_ghz and args.warmup > 0:
        run_ghz(workload.call, data, server.address, concurrency, args.warmup, connections, files)
    db0 = database_cpu(server.database) if server.database else {}
    statements0 = statements_so_far(server)
    began, server0, loadgen0, busy0, ours0 = (time.monotonic(), server.cpu_by_process(), children_cpu(),
                                              machine_busy(), ours_cpu())
    if use_ghz:
        measured = run_ghz(workload.call, data, server.address, concurrency, args.seconds, connections, files)
    else:  # its warm-up falls inside the window; CPU is a rate, so that does not matter
        measured = run_loadgen(workload.mode, server.address, concurrency, args.seconds, args.warmup, connections,
                               files)
    wall = time.monotonic() - began
    server1, loadgen1, busy1, ours1 = server.cpu_by_process(), children_cpu(), machine_busy(), ours_cpu()
    db1 = database_cpu(server.database) if server.database else {}
    statements1 = statements_so_far(server)
    per_process = {pid: (server1[pid] - server0.get(pid, 0.0)) / wall for pid in server1}
    database = sum(db1[pid] - db0.get(pid, 0.0) for pid in db1) / wall
    server_cpu = sum(per_process.values()) + database
    loadgen_cpu = (loadgen1 - loadgen0) / wall
    other = (busy1 - busy0 - (loadgen1 - loadgen0) - (ours1 - ours0)) / wall
    result = Result(
        workload=workload.key, target=target, concurrency=concurrency, tool="ghz" if use_ghz else "go",
        rps=measured["rps"], p50=measured["p50"], p99=measured["p99"], ok=measured["ok"], errors=measured["errors"],
        server_cpu=server_cpu, loadgen_cpu=loadgen_cpu, other_cpu=max(other, 0.0),
    )
    if server.database:
        result.extra["database_cpu"] = database
    if result.ok:  # what one call cost: the server's CPU, the database's, and its statements
        result.extra["runstatus_ms"] = sum(per_process.values()) * wall / result.ok * 1000
        if server.database:
            result.extra["database_ms"] = database * wall / result.ok * 1000
        if statements0 is not None and statements1 is not None:
            result.extra["statements"] = (statements1 - statements0) / result.ok
    if len(per_process) > 1:  # runstatus --processes N: the parent only waits; show how the servers shared the load
        busy = sorted((v for v in per_process.values() if v > 0.02), reverse=True)
        result.extra["split"] = "/".join(f"{v:.2f}" for v in busy)
    if "report" in measured and workload.key == "lifecycle":
        report = measured["report"]
        result.extra.update({k: report.get(k) for k in ("lifecycles_per_second", "empty_claims", "abandoned")})
    return result


_ids_cache: dict[pathlib.Path, list[str]] = {}


def files_ids(files: pathlib.Path) -> list[str]:
    path = files / "ids.txt"
    if path not in _ids_cache:
        _ids_cache[path] = path.read_text().split() if path.exists() else []
    return _ids_cache[path]


# ---------------------------------------------------------------------------
# Machine facts and the markdown file
# ---------------------------------------------------------------------------

def machine_facts() -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "?"

    import grpc

    ghz_version = re.search(r"^GHZ_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    dirty = len(out("git", "status", "--porcelain").splitlines())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "sqlite": sqlite3.sqlite_version,
        "go": out("go", "env", "GOVERSION"),
        "ghz": ghz_version.group(1) if ghz_version else "?",
        "commit": out("git", "rev-parse", "--short", "HEAD") + (f" (+{dirty} changed files)" if dirty else ""),
        "load average before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "CPU busy before (3 s)": f"{busy_now():.2f} cores",
    }


def busy_now(seconds: float = 3.0) -> float:
    """Cores the machine used over a few seconds before we start: is someone else busy?"""
    before = machine_busy()
    time.sleep(seconds)
    return (machine_busy() - before) / seconds


def facts_line(facts: dict[str, str]) -> str:
    return "; ".join(f"{k} {v}" for k, v in facts.items())


def replace_section(path: pathlib.Path, name: str, body: str) -> None:
    """Writes one section of the markdown file, keeping the others (each run rewrites only its own)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    order = ["table", "watchers", "profile", "soak"]
    text = path.read_text() if path.exists() else ""
    sections = {}
    for other in order:
        m = re.search(f"<!-- bench:{other} -->.*?<!-- /bench:{other} -->\n?", text, re.S)
        if m:
            sections[other] = m.group(0).rstrip("\n")
    sections[name] = f"{start}\n{body.rstrip()}\n{end}"
    header = (
        "# Benchmark\n\n"
        "Written by `make bench` (scripts/bench.py); each section is rewritten by the run that made it.\n"
        "See the docstring of scripts/bench.py for what is measured and how.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n\n".join(sections[s] for s in order if s in sections) + "\n")


def command_line() -> str:
    return "make bench" + (f' ARGS="{" ".join(sys.argv[1:])}"' if sys.argv[1:] else "")


# ---------------------------------------------------------------------------
# The side-by-side table
# ---------------------------------------------------------------------------

def prepare_big_db(args: argparse.Namespace) -> pathlib.Path:
    db = (args.db or pathlib.Path(tempfile.gettempdir()) / "runstatus-bench" / f"bench-{args.work_orders}.db").resolve()
    bench_queries.prepare(db, args.work_orders, random.Random(args.seed))
    return db


def warm_page_cache(db: pathlib.Path) -> None:
    """Reads the file once, so the reads measure a server whose database is in the OS page
    cache, as a long-running one's is (a file read cold from a virtual disk makes p99 the
    disk's: GetWorkOrder p99 3.6 ms cold, 1.6 ms warm on the same run)."""
    began = time.perf_counter()
    with open(db, "rb") as f:
        while f.read(1 << 24):
            pass
    print(f"  read {db.name} into the page cache in {time.perf_counter() - began:.1f} s", flush=True)


def sample_ids(db: pathlib.Path, n: int, count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = []
        for seq in rnd.sample(range(1, n + 1), min(count, n)):
            row = conn.execute("SELECT id FROM work_orders WHERE seq = ?", (seq,)).fetchone()
            if row:
                ids.append(row[0])
        return ids
    finally:
        conn.close()


def newest_create_time(db: pathlib.Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT create_time FROM work_orders ORDER BY seq DESC LIMIT 1").fetchone()[0])
    finally:
        conn.close()


def write_targets(args: argparse.Namespace, key: str) -> list[str]:
    """The servers a workload that is not a read runs on: each backend's one process, then its
    two. Classify never touches the database: it runs on the first backend's only."""
    targets = []
    for backend in args.backends[:1] if key == "classify" else args.backends:
        one, two, _ = TARGETS[backend]
        targets += [one, two] if args.processes_compare else [one]
    return targets


def start_runstatus(backend: str, target: str, work: pathlib.Path, pg: LocalPostgres | None,
                    db: pathlib.Path | str | None = None, *args: str) -> Server:
    """runstatus on the backend: a fresh database (SQLite: a file; PostgreSQL: a database of the
    bench's cluster), or `db`."""
    if backend == "sqlite":
        server = runstatus_server(f"runstatus-{target}", db or work / f"{target}.db", work, *args)
    else:
        assert pg is not None
        url = db or pg.create_database(target.replace("-", "_"))
        server = runstatus_server(f"runstatus-{target}", url, work, *args)
        server.database, server.dbname = pg, str(url).rsplit("/", 1)[-1]
    return server.start()


def run_table(args: argparse.Namespace, work: pathlib.Path, facts: dict[str, str], pg: LocalPostgres | None) -> None:
    keys = args.workloads
    reads = [k for k in keys if WORKLOADS[k].read]
    others = [k for k in keys if not WORKLOADS[k].read]
    files = work / "files"
    files.mkdir(exist_ok=True)
    write_protoset(files / "runstatus.protoset")

    big_db, big_url, ids = None, "", []
    if reads:
        big_db = prepare_big_db(args)
        if pg is not None:  # the same rows, so the same ids and filters, on both backends
            big_url = pg.create_database("big")
            print(f"copying {big_db.name} into PostgreSQL ({big_url})", flush=True)
            bench_queries.fill_postgres(big_url, big_db)
        if "sqlite" in args.backends:
            warm_page_cache(big_db)
        ids = sample_ids(big_db, args.work_orders, 10_000, args.seed)
        (files / "ids.txt").write_text("\n".join(ids) + "\n")

    servers: dict[str, Server] = {}
    results: list[Result] = []
    one_at_a_time: dict[str, list[tuple[str, list[float], str]]] = {}
    try:
        print("\nstarting the servers", flush=True)
        servers["baseline"] = baseline_server(work).start()
        if args.processes_compare:  # how far the bare framework itself scales on this machine
            servers["baseline2"] = baseline_server(work, 2).start()
        for backend in args.backends:
            one, two, big = TARGETS[backend]
            if others:
                servers[one] = start_runstatus(backend, one, work, pg)
                if args.processes_compare:
                    servers[two] = start_runstatus(backend, two, work, pg, None, "--processes", "2")
            if reads:
                began = time.perf_counter()
                servers[big] = start_runstatus(backend, big, work, pg, big_db if backend == "sqlite" else big_url)
                print(f"  runstatus on the big {BACKENDS[backend]} database up in "
                      f"{time.perf_counter() - began:.1f} s (migrations included)")
        for name, server in servers.items():
            if name in ("rs1", "rs2", "pg1", "pg2"):  # the workflow ghz's CreateWorkOrder requests name
                client = Client(server.address)
                try:
                    client.workflow(["main"], wid=CREATE_WORKFLOW)
                finally:
                    client.close()
        for name, s in servers.items():
            print(f"  {name:9} {s.address}  log {s.log_path}")

        # The plan at each concurrency: baselines first, then each workload on each server.
        plan: list[tuple[str, str, str]] = [("baseline", "baseline", args.tool)]
        if args.processes_compare:
            plan.append(("baseline", "baseline2", args.tool))
        if args.tool == "ghz" and "lifecycle" in keys:
            plan.append(("baseline", "baseline", "go"))  # the lifecycle's bar: the same tool
        for key in others:
            if key == "baseline":
                continue
            tool = args.tool if WORKLOADS[key].call else "go"
            if WORKLOADS[key].floor:
                plan.append((key, "baseline", tool))
                continue
            plan += [(key, target, tool) for target in write_targets(args, key)]
        for key in reads:
            plan += [(key, TARGETS[backend][2], args.tool) for backend in args.backends]

        total = len(plan) * len(args.concurrency)
        eta = total * (args.seconds + args.warmup + 0.7)
        print(f"\n{total} points of {args.seconds:g} s (+{args.warmup:g} s warm-up): about {eta / 60:.1f} min\n",
              flush=True)
        for c in args.concurrency:
            for key, target, tool in plan:
                r = measure(WORKLOADS[key], servers[target], target, c, tool, args, files)
                results.append(r)
                print(f"  c={c:<3} {target:8} {key:10} {r.tool:3} {r.rps:9.1f} RPC/s  p50 {r.p50:7.2f} ms  "
                      f"p99 {r.p99:7.2f} ms  cpu server {r.server_cpu:.2f} loadgen {r.loadgen_cpu:.2f} "
                      f"other {r.other_cpu:.2f}  {notes(r)}", flush=True)
        if reads and args.read_samples:
            assert big_db is not None
            one_at_a_time = read_one_at_a_time(servers, ids, newest_create_time(big_db), args)
        (work / "results.json").write_text(json.dumps({"points": [r.__dict__ for r in results],
                                                       "one_at_a_time": one_at_a_time}, indent=1))
    finally:
        for s in servers.values():
            s.stop()

    text, verdicts = table_markdown(results, one_at_a_time, args, facts, big_db)
    print("\n" + text)
    replace_section(args.out_md, "table", text)
    plot(results, args)
    print(f"\nwrote {args.out_md} and {args.out_png}")


def read_one_at_a_time(servers: dict[str, Server], ids: list[str], newest: int,
                       args: argparse.Namespace) -> dict[str, list[tuple[str, list[float], str]]]:
    """bench_queries.py's reads (each List and Count filter), --read-samples calls of each, one
    at a time, on each backend's big database; the backends take turns workload by workload.
    Per backend: (workload, sorted milliseconds, what the last call returned)."""
    print(f"\nreads one at a time, {args.read_samples} calls each", flush=True)
    clients = {b: Client(servers[TARGETS[b][2]].address) for b in args.backends}
    try:
        workloads = {b: bench_queries.read_workloads(clients[b], ids, newest) for b in args.backends}
        out: dict[str, list[tuple[str, list[float], str]]] = {b: [] for b in args.backends}
        for i in range(len(workloads[args.backends[0]])):
            wait_for_quiet(args)
            for backend in args.backends:
                name, call = workloads[backend][i]
                times, answer = bench_queries.measure(call, args.read_samples)
                out[backend].append((name, sorted(times), bench_queries.describe(answer)))
                print(f"  {BACKENDS[backend]:10} {name:40} p50 {bench_queries.percentile(sorted(times), 50):7.2f} ms"
                      f"  p99 {bench_queries.percentile(sorted(times), 99):7.2f} ms  {out[backend][-1][2]}",
                      flush=True)
        return out
    finally:
        for client in clients.values():
            client.close()


def find(results: list[Result], key: str, target: str, c: int, tool: str | None = None) -> Result | None:
    for r in results:
        if r.workload == key and r.target == target and r.concurrency == c and (tool is None or r.tool == tool):
            return r
    return None


def notes(r: Result) -> str:
    """Lifecycles per second, how two processes shared the CPU, errors."""
    parts = []
    if r.extra.get("lifecycles_per_second") is not None:
        parts.append(f"{r.extra['lifecycles_per_second']:,.0f} lifecycles/s")
        if r.extra.get("empty_claims") or r.extra.get("abandoned"):
            parts.append(f"{r.extra.get('empty_claims')} empty claims, {r.extra.get('abandoned')} abandoned")
    if r.extra.get("split"):
        parts.append(f"CPU per process {r.extra['split']}")
    if r.extra.get("database_cpu") is not None:
        parts.append(f"of the server's CPU, PostgreSQL {r.extra['database_cpu']:.2f}")
    if r.errors:
        parts.append("errors " + ", ".join(f"{k} {v}" for k, v in r.errors.items()))
    return "; ".join(parts)


NAMES = {"baseline": "baseline", "baseline2": "baseline ×2 proc", "rs1": "runstatus SQLite",
         "rs2": "runstatus SQLite ×2 proc", "rs-big": "runstatus SQLite", "pg1": "runstatus PostgreSQL",
         "pg2": "runstatus PostgreSQL ×2 proc", "pg-big": "runstatus PostgreSQL"}


def ratio_cell(top: Result | None, bottom: Result | None) -> str:
    return f"{top.rps / bottom.rps:.2f}" if top and bottom and bottom.rps else "–"


def table_markdown(results: list[Result], one_at_a_time: dict[str, list[tuple[str, list[float], str]]],
                   args: argparse.Namespace, facts: dict[str, str], big_db: pathlib.Path | None) -> tuple[str, list[str]]:
    postgres = "postgres" in args.backends
    lines = [
        "## Side by side",
        "",
        f"`{command_line()}`, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {facts_line(facts)}.",
        "",
        f"Each point: {args.warmup:g} s warm-up, then {args.seconds:g} s measured; one connection per simulated "
        f"client (at most {args.max_connections}). Load from {'ghz' if args.tool == 'ghz' else 'the Go load generator'} "
        "(unary workloads) and the Go load generator `clients/go/cmd/loadgen` (the lifecycle). "
        "`× base` is the throughput over the baseline's, same tool, same concurrency, same run. "
        "CPU columns are cores used meanwhile by the server (all its processes"
        + (", and on PostgreSQL the database's too" if postgres else "") + "), the load generator, "
        "and anything else on the machine.",
        "",
        f"Writes go to fresh databases; reads to a database of {args.work_orders:,} work orders"
        + (f" (`{big_db}`, read once into the OS page cache before the servers start)." if big_db else "."),
    ]
    if postgres:
        lines += [
            "",
            "PostgreSQL: a cluster of the benchmark's own (scripts/postgres.py, in the work directory, removed "
            "after the run), with fsync on as in production and its defaults otherwise (shared_buffers 128 MB); "
            "every server on it commits durably (synchronous_commit on). Each server has a database of its own "
            "on it; \"×2 proc\" is `runstatus serve --processes 2` on one database, two server processes that "
            "share the port (the kernel spreads the connections). The big database is a copy of the SQLite one "
            "(the same rows, by COPY, into the schema the store's migrations make, then VACUUM ANALYZE, as "
            "autovacuum would have done), so both backends answer the same requests.",
        ]
    lines += [
        "",
        "| workload | server | c | RPC/s | p50 ms | p99 ms | × base | CPU server | CPU loadgen | CPU other | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    order = ["baseline", *[k for k in args.workloads if k != "baseline"]]
    for key in order:
        for target in NAMES:
            for tool in ("ghz", "go"):
                rows = [r for r in results if r.workload == key and r.target == target and r.tool == tool]
                for r in sorted(rows, key=lambda r: r.concurrency):
                    base = find(results, "baseline", "baseline", r.concurrency, r.tool)
                    over_base = ratio_cell(r, base) if key != "baseline" else "–"
                    title = WORKLOADS[key].title + (f" ({r.tool})" if key == "baseline" else "")
                    lines.append(
                        f"| {title} | {NAMES[target]} | {r.concurrency} | {r.rps:,.0f} | {r.p50:.2f} | {r.p99:.2f} "
                        f"| {over_base} | {r.server_cpu:.2f} | {r.loadgen_cpu:.2f} | {r.other_cpu:.2f} | {notes(r)} |"
                    )

    header = ["| workload | " + " | ".join(f"c={c}" for c in args.concurrency) + " |",
              "|---|" + "---:|" * len(args.concurrency)]
    writes = [k for k in args.workloads if not WORKLOADS[k].read and not WORKLOADS[k].floor and k != "baseline"]

    # PostgreSQL over SQLite, workload by workload.
    backend_lines: list[str] = []
    if postgres and "sqlite" in args.backends:
        backend_lines = ["", "### PostgreSQL / SQLite (throughput)", "", *header]
        pairs = [(k, "rs1", "pg1", "") for k in writes if k != "classify"]
        if args.processes_compare:
            pairs += [(k, "rs2", "pg2", ", 2 processes") for k in writes if k != "classify"]
        pairs += [(k, "rs-big", "pg-big", "") for k in args.workloads if WORKLOADS[k].read]
        for key, sqlite_target, pg_target, label in pairs:
            cells = [ratio_cell(find(results, key, pg_target, c), find(results, key, sqlite_target, c))
                     for c in args.concurrency]
            backend_lines.append(f"| {WORKLOADS[key].title}{label} | " + " | ".join(cells) + " |")

    # What one call costs, by workload and server: where a backend's throughput goes.
    cost_lines = ["", "### What one call costs (at c=" + str(max(args.concurrency)) + ")", "",
                  "CPU milliseconds per call of the runstatus processes and of PostgreSQL, and the statements "
                  "PostgreSQL ran per call (pg_stat_statements, BEGIN and COMMIT included; the lifecycle's calls "
                  "are its 6 RPCs).", "",
                  "| workload | server | runstatus CPU ms | PostgreSQL CPU ms | statements |", "|---|---|---:|---:|---:|"]
    for key in writes:
        for target in NAMES:
            r = find(results, key, target, max(args.concurrency))
            if r is None or "runstatus_ms" not in r.extra:
                continue
            db_ms = f"{r.extra['database_ms']:.2f}" if "database_ms" in r.extra else "–"
            statements = f"{r.extra['statements']:.1f}" if "statements" in r.extra else "–"
            cost_lines.append(f"| {WORKLOADS[key].title} | {NAMES[target]} | {r.extra['runstatus_ms']:.2f} | {db_ms} "
                              f"| {statements} |")
    if len(cost_lines) == 6:
        cost_lines = []

    # Two processes over one.
    proc_lines = []
    if args.processes_compare:
        proc_lines = ["", "### 2 processes / 1 process (throughput)", "", *header]
        cells = [ratio_cell(find(results, "baseline", "baseline2", c, args.tool),
                            find(results, "baseline", "baseline", c, args.tool)) for c in args.concurrency]
        proc_lines.append(f"| {WORKLOADS['baseline'].title} (for scale) | " + " | ".join(cells) + " |")
        for backend in args.backends:
            one_proc, two_proc, _ = TARGETS[backend]
            for key in [k for k in writes if one_proc in write_targets(args, k)]:
                cells = [ratio_cell(find(results, key, two_proc, c), find(results, key, one_proc, c))
                         for c in args.concurrency]
                proc_lines.append(f"| {WORKLOADS[key].title} ({BACKENDS[backend]}) | " + " | ".join(cells) + " |")

    # Reads one at a time.
    read_lines = []
    if one_at_a_time:
        backends = list(one_at_a_time)
        read_lines = ["", "### Reads one at a time", "",
                      f"bench_queries.py's reads, {args.read_samples} calls of each, one at a time from a Python "
                      f"gRPC client, on each backend's database of {args.work_orders:,} work orders (the backends "
                      "take turns read by read). Milliseconds; pages of 50.", "",
                      "| read | " + " | ".join(f"{BACKENDS[b]} p50 | {BACKENDS[b]} p99" for b in backends)
                      + " | answer |",
                      "|---|" + "---:|---:|" * len(backends) + "---|"]
        for i, (name, _, answer) in enumerate(one_at_a_time[backends[0]]):
            cells = []
            for b in backends:
                times = one_at_a_time[b][i][1]
                cells.append(f"{bench_queries.percentile(times, 50):.2f} | {bench_queries.percentile(times, 99):.2f}")
            read_lines.append(f"| {name} | " + " | ".join(cells) + f" | {answer} |")

    # Targets.
    verdicts = []
    top = max(args.concurrency)
    low = min(args.concurrency)
    for backend in args.backends:
        one_proc, two_proc, big = TARGETS[backend]
        db_name = BACKENDS[backend]
        for key in ("create", "lifecycle"):
            if key not in args.workloads:
                continue
            cells = []
            met_all = True
            for c in args.concurrency:
                point, base = find(results, key, one_proc, c), find(results, "baseline", "baseline", c,
                                                                    "go" if key == "lifecycle" else args.tool)
                if point and base and base.rps:
                    ratio = point.rps / base.rps
                    met_all &= ratio >= WRITE_RATIO_TARGET
                    cells.append(f"c={c}: {ratio:.2f}")
            verdicts.append(f"{'MET' if met_all else 'NOT MET'}: {WORKLOADS[key].title} on {db_name} ≥ "
                            f"{WRITE_RATIO_TARGET}× baseline at the same concurrency ({', '.join(cells)})")
        limits = LATENCY_TARGETS_MS if backend == "sqlite" else POSTGRES_LATENCY_TARGETS_MS
        for key, limit in limits.items():
            point = find(results, key, big, low)
            if key not in args.workloads or point is None:
                continue
            holds = [c for c in args.concurrency if (x := find(results, key, big, c)) and x.p99 <= limit]
            verdicts.append(
                f"{'MET' if point.p99 <= limit else 'NOT MET'}: {WORKLOADS[key].title} on {db_name} p99 ≤ {limit:g} "
                f"ms at {args.work_orders:,} work orders: {point.p99:.2f} ms at c={low}"
                f" (within the limit at c = {', '.join(map(str, holds)) or 'none'})"
            )
        for kind, key in (("List", "list"), ("Count", "count")):
            p99s = [(name, bench_queries.percentile(times, 99)) for name, times, _ in one_at_a_time.get(backend, [])
                    if name.startswith(kind)]
            if p99s:
                name, worst = max(p99s, key=lambda row: row[1])
                verdicts.append(f"{'MET' if worst <= limits[key] else 'NOT MET'}: every {kind} above on {db_name}, "
                                f"one at a time, p99 ≤ {limits[key]:g} ms: the slowest, {name}, {worst:.2f} ms")
        if args.processes_compare:
            for key in [k for k in writes if one_proc in write_targets(args, k)]:
                r1, r2 = find(results, key, one_proc, top), find(results, key, two_proc, top)
                if r1 and r2 and r1.rps:
                    ratio = r2.rps / r1.rps
                    verdicts.append(f"{'MET' if ratio >= PROCESSES_RATIO_TARGET else 'NOT MET'}: "
                                    f"{WORKLOADS[key].title} on {db_name}, 2 processes ≥ {PROCESSES_RATIO_TARGET}× "
                                    f"one at c={top}: {ratio:.2f}×")
    if "floor" in args.workloads:
        cells = [f"c={c}: {fl.rps / base.rps:.2f}" for c in args.concurrency
                 if (fl := find(results, "floor", "baseline", c)) and (base := find(results, "baseline", "baseline", c,
                                                                                     fl.tool)) and base.rps]
        verdicts.append("For scale, the floor: CreateWorkOrder as one durable INSERT on the bare server (no checks, "
                        f"ids, run or event) reached {', '.join(cells)} of the baseline.")
    if args.processes_compare:
        one, two = find(results, "baseline", "baseline", top, args.tool), find(results, "baseline", "baseline2", top,
                                                                                args.tool)
        if one and two and one.rps:
            verdicts.append(f"For scale, the bare baseline itself: 2 processes reached {two.rps / one.rps:.2f}× one "
                            f"at c={top} (one process already uses {one.server_cpu:.2f} cores: gRPC's C threads "
                            f"work outside the GIL; the load generator used {one.loadgen_cpu:.2f}).")
    busy = [r for r in results if r.other_cpu > args.busy_threshold]
    caveats = []
    if busy:
        caveats = ["", f"Note: at {len(busy)} of {len(results)} points something else on the machine used more than "
                       f"{args.busy_threshold:g} cores (CPU other) even after {args.busy_retries} more tries; "
                       "those points are less trustworthy."]
    text = "\n".join(lines + backend_lines + cost_lines + proc_lines + read_lines + ["", "### Targets", ""]
                     + [f"- {v}" for v in verdicts] + caveats + ["", "![throughput against concurrency](benchmark.png)"])
    return text, verdicts


def plot(results: list[Result], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    cs = sorted(args.concurrency)

    def line(ax: Any, key: str, target: str, tool: str | None, label: str, style: str, color: str) -> None:
        points = [(c, r.rps) for c in cs if (r := find(results, key, target, c, tool))]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, color=color, label=label, marker="o")

    for ax in (left, right):
        line(ax, "baseline", "baseline", args.tool, f"baseline Health/Check ({args.tool})", "-", "black")
        if args.tool == "ghz" and "lifecycle" in args.workloads:
            line(ax, "baseline", "baseline", "go", "baseline Health/Check (Go loadgen)", "--", "gray")
    if "floor" in args.workloads:
        line(left, "floor", "baseline", None, "baseline CreateWorkOrder: one durable INSERT", "-.", "black")
    colors = {"classify": "tab:blue", "create": "tab:orange", "lifecycle": "tab:green",
              "get": "tab:purple", "list": "tab:brown", "count": "tab:red"}
    # SQLite solid, PostgreSQL dashed; 2 processes dotted (SQLite) and dash-dotted (PostgreSQL).
    styles = {"rs1": ("-", ""), "rs2": (":", ", 2 processes"), "pg1": ("--", ", PostgreSQL"),
              "pg2": ("-.", ", PostgreSQL, 2 processes"), "rs-big": ("-", ""), "pg-big": ("--", ", PostgreSQL")}
    for key in ("classify", "create", "lifecycle"):
        if key in args.workloads:
            for target in write_targets(args, key):
                style, label = styles[target]
                line(left, key, target, None, WORKLOADS[key].title + label, style, colors[key])
    for key in ("get", "list", "count"):
        if key in args.workloads:
            for backend in args.backends:
                target = TARGETS[backend][2]
                line(right, key, target, None, WORKLOADS[key].title + styles[target][1], styles[target][0],
                     colors[key])
    left.set_title("Writes and Classify (1 and 2 processes; PostgreSQL dashed)"
                   if "postgres" in args.backends else "Writes and Classify (1 and 2 processes)")
    right.set_title(f"Reads on {args.work_orders:,} work orders")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(cs, [str(c) for c in cs])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("RPC/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"runstatus beside a bare grpc.aio server ({os.cpu_count()} cores, "
                 f"{datetime.date.today().isoformat()})")
    fig.tight_layout()
    args.out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out_png, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Soak: memory under a long mixed write load
# ---------------------------------------------------------------------------

def open_watches(metrics_port: int) -> float:
    text = scrape(metrics_port)
    m = re.search(r"^runstatus_watches ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def start_watchers(server: Server, metrics_port: int, n: int, work: pathlib.Path,
                   workflow: str = "", batch: int = 0, batch_delay_ms: float = 100) -> subprocess.Popen[str]:
    """n watch streams in another process, once the server counts them all open; batched
    (up to `batch` events per message) unless `batch` is 0."""
    cmd = [str(WATCHERS), "-addr", server.address, "-n", str(n)]
    if workflow:
        cmd += ["-workflow", workflow]
    if batch:
        cmd += ["-batch", str(batch), "-batch-delay", f"{batch_delay_ms:g}ms"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(work / "watchers.log", "a"), text=True)
    deadline = time.monotonic() + 120
    while open_watches(metrics_port) < n:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{n} watchers did not open (server counts {open_watches(metrics_port):g})")
        time.sleep(0.2)
    return proc


def stop_watchers(proc: subprocess.Popen[str]) -> dict[str, Any]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    return json.loads(out)  # type: ignore[no-any-return]


def run_watchers(args: argparse.Namespace, work: pathlib.Path, facts: dict[str, str]) -> None:
    c = args.watch_concurrency
    batch, delay_ms = args.watch_batch, args.watch_batch_delay
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    # W = 0 before and after the others; each other W unbatched, then batched (unless --watch-batch 0).
    plan = [(0, 0), *[(w, b) for w in args.watchers if w for b in ([0, batch] if batch else [0])], (0, 0)]
    print(f"\nwatchers: CreateWorkOrder at c={c} for {args.seconds:g} s with W receiving watchers, "
          f"W in {[w for w, _ in plan]}" + (f", each also batched ({batch} events, {delay_ms:g} ms)" if batch else ""),
          flush=True)
    for i, (n, b) in enumerate(plan):
        label = f"{n} batched" if b else f"{n}"
        port = free_port()
        server = runstatus_server(f"runstatus-watch-{i}", work / f"watch-{i}.db", work, "--metrics-port", str(port))
        server.start()
        watchers = None
        try:
            if n:
                watchers = start_watchers(server, port, n, work, batch=b, batch_delay_ms=delay_ms)
            wait_for_quiet(args)
            measured = run_loadgen("create", server.address, c, args.seconds, args.warmup,
                                   min(c, args.max_connections), work)
            seen = stop_watchers(watchers) if watchers else None
            watchers = None
        finally:
            if watchers is not None:
                watchers.kill()
            server.stop()
        rows.append((label, measured, seen))
        print(f"  W={label:12}  {measured['rps']:8.0f} creates/s  p99 {measured['p99']:.2f} ms"
              + (f"  events {seen['events']:,}  delivery p50 {seen['latency_ms']['p50']:.1f} ms "
                 f"p99 {seen['latency_ms']['p99']:.1f} ms  stream errors {seen['failures']}" if seen else ""),
              flush=True)

    # Memory: idle watchers (a workflow that gets no work orders) against none, on one server.
    port = free_port()
    server = runstatus_server("runstatus-watch-idle", work / "watch-idle.db", work, "--metrics-port", str(port))
    server.start()
    try:
        proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
        time.sleep(2)
        rss0 = proc.memory_info().rss / 2**20
        idle = start_watchers(server, port, args.idle_watchers, work, workflow="no-such-workflow")
        time.sleep(3)
        rss1 = proc.memory_info().rss / 2**20
        idle_create = run_loadgen("create", server.address, c, args.seconds, args.warmup,
                                  min(c, args.max_connections), work)
        stop_watchers(idle)
    finally:
        server.stop()

    base = statistics.mean([rows[0][1]["rps"], rows[-1][1]["rps"]])
    body = [
        "## Watchers",
        "",
        f"`{command_line()}`, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {facts_line(facts)}.",
        "",
        f"CreateWorkOrder from the Go load generator at c={c}, {args.seconds:g} s per row, each row on a fresh "
        "runstatus process, while W watch streams held by another process (clients/go/cmd/watchers) receive "
        "every event. Delivery latency: receipt time minus the event's own time (set as the change is written, "
        "so it includes the commit). Ratio: to the mean of the two W = 0 rows."
        + (f" Batched: the watches ask for up to {batch} events per message, an event held back at most "
           f"{delay_ms:g} ms for company (WatchWorkOrdersRequest.batching); the others get one event per message."
           if batch else ""),
        "",
        "| W (receiving) | creates/s | x W=0 | create p99 ms | events received | delivery p50 ms | delivery p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, m, seen in rows:
        delivered = "– | – | –"
        if seen:
            lat = seen["latency_ms"]
            delivered = f"{seen['events']:,} | {lat['p50']:.1f} | {lat['p99']:.1f}"
        body.append(f"| {label} | {m['rps']:,.0f} | {m['rps'] / base:.2f} | {m['p99']:.2f} | {delivered} |")
    body += [
        "",
        f"{args.idle_watchers:,} idle watchers (filtered to a workflow with no work orders): server RSS "
        f"{rss0:.1f} → {rss1:.1f} MiB (**{rss1 - rss0:+.1f} MiB**); CreateWorkOrder with them open "
        f"{idle_create['rps']:,.0f}/s (**{idle_create['rps'] / base:.2f}x** W=0).",
    ]
    text = "\n".join(body)
    print("\n" + text)
    replace_section(args.out_md, "watchers", text)


def run_soak(args: argparse.Namespace, work: pathlib.Path, facts: dict[str, str]) -> None:
    seconds = args.soak
    server = runstatus_server("runstatus-soak", work / "soak.db", work).start()
    proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
    samples: list[tuple[float, float]] = []  # (seconds since start, RSS MiB)
    rates: list[tuple[float, float]] = []
    print(f"\nsoak: mixed worker load, c={args.soak_concurrency}, {seconds:g} s, RSS every "
          f"{args.soak_interval:g} s (server {server.address}, pid {proc.pid})", flush=True)
    began = time.monotonic()
    rss0 = proc.memory_info().rss / 2**20
    samples.append((0.0, rss0))
    last = [began]

    def on_progress(p: dict[str, Any]) -> None:  # called at each progress line (every soak_interval)
        rates.append((p["t"], p["rps"]))
        now = time.monotonic()
        if now - last[0] >= args.soak_interval * 0.9:
            last[0] = now
            rss = proc.memory_info().rss / 2**20
            samples.append((now - began, rss))
            if len(samples) % max(1, int(60 / args.soak_interval)) == 0:
                print(f"  {now - began:6.0f} s  RSS {rss:7.1f} MiB  {p['rps']:7.0f} RPC/s", flush=True)

    try:
        measured = run_loadgen("mixed", server.address, args.soak_concurrency, seconds, 0,
                               min(args.soak_concurrency, args.max_connections), work, every=args.soak_interval,
                               on_progress=on_progress)
        samples.append((time.monotonic() - began, proc.memory_info().rss / 2**20))
        db_size = sum(p.stat().st_size for p in work.glob("soak.db*"))
    finally:
        server.stop()

    report = measured["report"]
    rss = [s[1] for s in samples]
    # Flat: after the first quarter (caches and the heap settling), the mean RSS of
    # the last quarter is within 5% (or 10 MiB) of the second quarter's.
    quarter = [[s[1] for s in samples if q * seconds / 4 <= s[0] < (q + 1) * seconds / 4 + 1] for q in range(4)]
    q2, q4 = statistics.mean(quarter[1] or rss), statistics.mean(quarter[3] or rss)
    growth = q4 - q2
    flat = growth <= max(0.05 * q2, 10.0)
    slope = 0.0
    second_half = [s for s in samples if s[0] >= seconds / 2]
    if len(second_half) >= 3:
        slope = statistics.linear_regression([s[0] for s in second_half], [s[1] for s in second_half]).slope * 60
    rps = [r[1] for r in rates]
    body = [
        "## Soak",
        "",
        f"`{command_line()}`, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {facts_line(facts)}.",
        "",
        f"One runstatus process on a fresh database, {seconds:g} s of the Go load generator's `mixed` mode at "
        f"c={args.soak_concurrency} (each iteration: CreateWorkOrder, ClaimRuns, StartRun, Heartbeat, StartStep, "
        "CompleteStep (every 4th with a TypeError), CompleteRun, Classify, GetWorkOrder); RSS sampled with psutil "
        f"every {args.soak_interval:g} s.",
        "",
        "| | |",
        "|---|---|",
        f"| RPCs | {report['rpcs']:,} ({report['rps']:,.0f}/s; p50 {report['p50_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms) |",
        f"| lifecycles | {report.get('lifecycles', 0):,} ({report.get('lifecycles_per_second', 0):,.1f}/s) |",
        f"| errors | {report.get('errors') or 'none'} |",
        f"| throughput per interval | min {min(rps, default=0):,.0f}, median {statistics.median(rps) if rps else 0:,.0f}, "
        f"max {max(rps, default=0):,.0f} RPC/s |",
        f"| RSS at start (idle) | {rss0:.1f} MiB |",
        f"| RSS at end | {rss[-1]:.1f} MiB |",
        f"| RSS max | {max(rss):.1f} MiB |",
        f"| mean RSS, 2nd quarter → last quarter | {q2:.1f} → {q4:.1f} MiB ({growth:+.1f} MiB) |",
        f"| RSS slope over the second half | {slope:+.2f} MiB/min |",
        f"| database at the end | {db_size / 2**20:,.0f} MiB |",
        f"| memory flat | **{'yes' if flat else 'NO'}** (last quarter within 5% or 10 MiB of the second) |",
        "",
        "RSS over time (MiB): " + ", ".join(f"{t:.0f} s {r:.0f}" for t, r in samples[:: max(1, len(samples) // 12)]),
    ]
    text = "\n".join(body)
    print("\n" + text)
    replace_section(args.out_md, "soak", text)


# ---------------------------------------------------------------------------
# Profile: where one runstatus process spends its time
# ---------------------------------------------------------------------------

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short_frame(frame: str) -> str:
    """'func (/long/path/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py:12)'."""
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3", str(ROOT) + "/server/", str(ROOT) + "/clients/python/",
                   str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = "stdlib/" + path.split("/", 1)[1] if "/" in path else path
            break
    line = f":{m.group('line')}" if m.group("line") else ""
    return f"{m.group('func')} ({path}{line})"


# Leaf frames where a thread is waiting, not working. py-spy counts a thread as
# active unless the OS says it sleeps, and some waits (a lock, a queue) look
# active: these samples are dropped before the percentages are taken.
WAITING_LEAVES = {
    "_worker (concurrent/futures/thread.py)": "a reader or committer thread waiting for work",
    "EpollSelector.select (selectors.py)": "the event loop waiting for I/O",
    "Thread.run (threading.py)": "gRPC's completion-queue poller thread (C code, polling)",
}
# Frames that only wrap everything below them; left out of the "total" table.
WRAPPER_FILES = ("threading.py", "runpy", "typer/", "click/", "asyncio/runners.py", "asyncio/base_events.py",
                 "runstatus_server/cli.py", "runstatus_server/__main__.py", "concurrent/futures/thread.py",
                 "asyncio/events.py")


def without_line(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def thread_kind(stack: list[str]) -> str:
    joined = ";".join(stack)
    if "_commit_now" in joined or "_lock_and_begin" in joined:
        return "committer thread"
    if "concurrent/futures/thread.py" in joined:
        return "reader threads"
    if "asyncio/" in joined:
        return "event loop"
    return "other threads"


def parse_collapsed(text: str) -> dict[str, Any]:
    """Samples, own and total samples per function, per kind of thread, and the waits dropped."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    kinds: dict[str, int] = {}
    waiting: dict[str, int] = {}
    samples = 0
    for line in text.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        stack = [short_frame(f) for f in stack_text.split(";")]
        leaf = without_line(stack[-1])
        if leaf in WAITING_LEAVES:
            waiting[leaf] = waiting.get(leaf, 0) + count
            continue
        samples += count
        own[stack[-1]] = own.get(stack[-1], 0) + count
        for frame in set(stack):
            total[frame] = total.get(frame, 0) + count
        kind = thread_kind(stack)
        kinds[kind] = kinds.get(kind, 0) + count
    return {"samples": samples, "own": own, "total": total, "kinds": kinds, "waiting": waiting}


def run_profile(args: argparse.Namespace, work: pathlib.Path, facts: dict[str, str],
                pg: LocalPostgres | None) -> None:
    """py-spy on one runstatus process: on SQLite, or on PostgreSQL (`pg`: --backends postgres)."""
    py_spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")
    files = work / "files"
    files.mkdir(exist_ok=True)
    write_protoset(files / "runstatus.protoset")
    db = pg.create_database("profile") if pg is not None else work / "profile.db"
    server = runstatus_server("runstatus-profile", db, work).start()
    client = Client(server.address)
    try:
        client.workflow(["main"], wid=CREATE_WORKFLOW)
    finally:
        client.close()
    pid = server.proc.pid  # type: ignore[union-attr]
    sections = ["## Profile" + (" (PostgreSQL)" if pg is not None else ""), "", f"`{command_line()}`, {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}", "",
                f"Machine: {facts_line(facts)}.", "",
                f"py-spy {args.profile_rate} Hz on one runstatus process (threads the OS reports running; time in "
                "C code, such as SQLite and gRPC's Cython layer, shows as own time of the Python function that "
                "called it: `Handle._run` is gRPC callbacks run by asyncio), "
                f"{args.profile_seconds:g} s per load at c={args.profile_concurrency}. Own = samples with the "
                "function on top of the stack; total = samples with it anywhere on the stack."]
    try:
        for key in ("create", "lifecycle"):
            workload = WORKLOADS[key]
            use_ghz = args.tool == "ghz" and bool(workload.call)
            duration = args.profile_seconds
            out = work / f"profile-{key}.txt"
            # The load runs 2 s longer than py-spy, which starts after 1 s of warm-up.
            wait_for_quiet(args)
            began, busy0, ours0, loadgen0 = time.monotonic(), machine_busy(), ours_cpu(), children_cpu()
            if use_ghz:
                data_file = files / f"profile-{key}.json"
                data_file.write_text(json.dumps(ghz_data(key, [])))
                load = subprocess.Popen(
                    ["ghz", "--insecure", "--protoset", str(files / "runstatus.protoset"), "--call", workload.call,
                     "--data-file", str(data_file), "-c", str(args.profile_concurrency), "--connections",
                     str(min(args.profile_concurrency, args.max_connections)), "-z", f"{duration + 2}s",
                     "--duration-stop", "ignore", "-O", "json", server.address],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            else:
                load = subprocess.Popen(
                    [str(LOADGEN), "-addr", server.address, "-mode", workload.mode, "-c",
                     str(args.profile_concurrency), "-z", f"{duration + 1}s", "-warmup", "1s"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
            spy = subprocess.run(
                [py_spy, "record", "--pid", str(pid), "--duration", str(int(duration)), "--rate",
                 str(args.profile_rate), "--format", "raw", "--function", "--output", str(out)],
                capture_output=True, text=True)
            load_out, load_err = load.communicate()
            wall = time.monotonic() - began
            other = (machine_busy() - busy0 - (ours_cpu() - ours0) - (children_cpu() - loadgen0)) / wall
            if spy.returncode != 0 or not out.exists():
                raise RuntimeError(f"py-spy failed ({spy.returncode}): {spy.stderr.strip()}\n"
                                   "(py-spy needs ptrace: run as root or with CAP_SYS_PTRACE)")
            rps = "?"
            try:
                report = json.loads(load_out)
                rps = f"{report['rps']:,.0f}" if "rps" in report else "?"
            except ValueError:
                pass
            parsed = parse_collapsed(out.read_text())
            samples, own, total, kinds, waiting = (parsed[k] for k in ("samples", "own", "total", "kinds", "waiting"))
            samples = samples or 1
            dropped = sum(waiting.values())
            title = (f"### {workload.title} ({'ghz' if use_ghz else 'Go loadgen'}, {rps} RPC/s under the profiler; "
                     f"other programs used {max(other, 0):.2f} cores meanwhile)")
            rows = [title, "",
                    f"{samples:,} working samples (and {dropped:,} waiting ones dropped: "
                    + ", ".join(f"{WAITING_LEAVES[k]} {v:,}" for k, v in sorted(waiting.items(), key=lambda kv: -kv[1]))
                    + "). Working samples by thread: "
                    + ", ".join(f"{k} {v / samples:.0%}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])),
                    "", "| # | function (by own time) | own | total |", "|---:|---|---:|---:|"]
            for i, (frame, n) in enumerate(sorted(own.items(), key=lambda kv: -kv[1])[: args.profile_top], 1):
                rows.append(f"| {i} | `{frame}` | {n / samples:.1%} | {total.get(frame, 0) / samples:.1%} |")
            rows += ["", "| # | function (by total time; entry points and wrappers left out) | total | own |",
                     "|---:|---|---:|---:|"]
            inner = [(f, n) for f, n in total.items() if not any(w in f for w in WRAPPER_FILES)]
            for i, (frame, n) in enumerate(sorted(inner, key=lambda kv: -kv[1])[: args.profile_top], 1):
                rows.append(f"| {i} | `{frame}` | {n / samples:.1%} | {own.get(frame, 0) / samples:.1%} |")
            rows += ["", f"Collapsed stacks (py-spy raw format): `{out.name}` in the run's work directory."]
            sections += ["", *rows]
            print("\n" + "\n".join(rows), flush=True)
    finally:
        server.stop()
    replace_section(args.out_md, "profile", "\n".join(sections))


# ---------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run it with `make bench ARGS=...`; see the docstring of scripts/bench.py for the details.",
    )
    parser.add_argument("--concurrency", default="1,4,16,64",
                        help="comma-separated concurrency levels (default 1,4,16,64)")
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per point (default 5)")
    parser.add_argument("--warmup", type=float, default=1, help="untimed warm-up seconds per point (default 1)")
    parser.add_argument("--work-orders", type=int, default=1_000_000,
                        help="work orders in the read database (default 1,000,000)")
    parser.add_argument("--db", type=pathlib.Path, default=None,
                        help="the read database (default <tempdir>/runstatus-bench/bench-N.db, as bench_queries.py)")
    parser.add_argument("--backends", default="sqlite,postgres",
                        help="comma-separated: runstatus on sqlite, postgres or both (default both; PostgreSQL's "
                             "reads copy the SQLite database, which is filled either way)")
    parser.add_argument("--read-samples", type=int, default=200,
                        help="calls of each read measured one at a time on each backend (0: none; default 200)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--tool", choices=["ghz", "go"], default="ghz" if shutil.which("ghz") else "go",
                        help="load generator of the unary workloads (default ghz if on PATH; "
                             "the lifecycle always uses the Go one)")
    parser.add_argument("--max-connections", type=int, default=64,
                        help="connections per load generator: one per client up to this (default 64)")
    parser.add_argument("--busy-threshold", type=float, default=0.25,
                        help="measure a point again if other programs used more cores than this meanwhile")
    parser.add_argument("--busy-retries", type=int, default=2, help="at most this many more tries per point")
    parser.add_argument("--quiet-wait", type=float, default=20,
                        help="before each point, wait up to this many seconds for other programs to go quiet")
    parser.add_argument("--no-processes", dest="processes_compare", action="store_false",
                        help="skip runstatus --processes 2")
    parser.add_argument("--no-table", dest="table", action="store_false",
                        help="skip the side-by-side table (e.g. with --soak or --profile alone)")
    parser.add_argument("--watchers", default="", metavar="W,W,...",
                        help="also measure CreateWorkOrder with W receiving watchers, e.g. 0,100,500")
    parser.add_argument("--watch-concurrency", type=int, default=16)
    parser.add_argument("--watch-batch", type=int, default=100, metavar="N",
                        help="--watchers also measures each W batched, up to N events per message "
                             "(default 100; 0: unbatched only)")
    parser.add_argument("--watch-batch-delay", type=float, default=100, metavar="MS",
                        help="the batched watchers' max_delay in ms, 0 to 1000 (default 100)")
    parser.add_argument("--idle-watchers", type=int, default=1000,
                        help="idle watch streams for the memory figure of --watchers (default 1000)")
    parser.add_argument("--soak", type=float, default=0, metavar="SECONDS",
                        help="also run a mixed write load this long and watch the server's RSS")
    parser.add_argument("--soak-concurrency", type=int, default=16)
    parser.add_argument("--soak-interval", type=float, default=5, help="seconds between RSS samples (default 5)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one runstatus process with py-spy under CreateWorkOrder and the lifecycle")
    parser.add_argument("--profile-seconds", type=float, default=20)
    parser.add_argument("--profile-concurrency", type=int, default=16)
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--profile-top", type=int, default=15, help="functions listed per table")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-src", type=pathlib.Path, default=None, metavar="DIR",
                        help="run the runstatus servers from this checkout (e.g. a `git worktree` of another "
                             "commit), for an A/B of two commits by the same benchmark")
    parser.add_argument("--out-md", type=pathlib.Path, default=DOCS / "benchmark.md")
    parser.add_argument("--out-png", type=pathlib.Path, default=DOCS / "benchmark.png")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (logs, databases, results; PostgreSQL's cluster, stopped)")
    args = parser.parse_args()
    if args.server_src is not None:
        src = args.server_src.resolve()
        if not (src / "server" / "runstatus_server").is_dir():
            parser.error(f"--server-src {src}: no server/runstatus_server in it")
        SERVER_PATH[:] = [str(src / "server"), str(src / "clients" / "python")]

    try:
        args.concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    except ValueError:
        parser.error("--concurrency takes comma-separated integers")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {','.join(WORKLOADS)}")
    if "baseline" not in args.workloads:
        args.workloads.insert(0, "baseline")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not args.backends or any(b not in BACKENDS for b in args.backends):
        parser.error(f"--backends takes a comma-separated subset of {','.join(BACKENDS)}")
    if args.read_samples < 0 or args.read_samples > 9_000:
        parser.error("--read-samples must be between 0 and 9,000")
    if not args.concurrency or min(args.concurrency) < 1 or args.seconds <= 0 or args.work_orders < 1:
        parser.error("--concurrency, --seconds and --work-orders must be positive")
    try:
        args.watchers = sorted({int(w) for w in args.watchers.split(",") if w.strip()})
    except ValueError:
        parser.error("--watchers takes comma-separated integers")
    if not 0 <= args.watch_batch <= 1000 or not 0 <= args.watch_batch_delay <= 1000:
        parser.error("--watch-batch takes 0 to 1000 events, --watch-batch-delay 0 to 1000 ms")
    if not (args.table or args.soak or args.profile or args.watchers):
        parser.error("nothing to do: --no-table needs --watchers, --soak or --profile")
    if args.tool == "ghz" and not shutil.which("ghz"):
        parser.error("ghz is not on PATH (make bench installs it into .tools/bin); or say --tool go")

    build_loadgen()
    facts = machine_facts()
    print("machine: " + facts_line(facts), flush=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="runstatus-bench-"))
    print(f"work directory {work}")
    pg = None
    try:
        if "postgres" in args.backends and (args.table or (args.profile and "sqlite" not in args.backends)):
            pg = start_postgres(work)
            facts["postgresql"] = pg.psql("SHOW server_version").split()[0] + " (fsync on)"
            print(f"PostgreSQL {facts['postgresql']} in {pg.root}", flush=True)
        if args.table:
            run_table(args, work, facts, pg)
        if args.watchers:
            run_watchers(args, work, facts)
        if args.profile:
            run_profile(args, work, facts, pg if "sqlite" not in args.backends else None)
        if args.soak:
            run_soak(args, work, facts)
    finally:
        if pg is not None:
            DATABASES.remove(pg)
            pg.stop() if args.keep else pg.remove()
        if args.keep:
            print(f"kept {work}")
        else:
            # Keep the logs and results (small); drop the databases.
            for db in work.glob("*.db*"):
                db.unlink(missing_ok=True)
            print(f"logs and results in {work}")


if __name__ == "__main__":
    main()
