"""Retention soak (issue 29): steady writes for 15 minutes against a server that keeps ended work
orders 2 minutes; does the database level off, and do the writers feel the pruning?

    make bench-soak                                    # SQLite, 15 minutes
    make bench-soak ARGS="--backend postgres"          # a throwaway PostgreSQL (fsync on)
    .venv/bin/python scripts/soak.py --minutes 3 --retention 20s --off-minutes 0.5   # a quick look

The load (this process, asyncio, open loop): creates at a fixed offered rate (--rate, default
60/s on SQLite and 25/s on PostgreSQL: about half of what a server on this 2-core box and
the load generator beside it sustain for this mix, a worker lifecycle being five RPCs), each
slot of twenty taking one outcome:
  16 SUCCESS     project soak: a worker claims the run, starts it and its one step, completes both
   2 FAILED      the same, the step completed with a TypeError (classified FAILED)
   1 REJECTED    project soak-limited, whose run limit of one is held by a pending run
   1 CANCELLED   project soak-cancel (no worker): created, then CancelRun
Workers (--workers coroutines) claim up to 8 runs at a time from project soak.

The server runs with --retention <every terminal status>=<--retention> (default 2m), --request-id-
seconds 60 (or the retention, if shorter) and --sweep-seconds 1. Pruning is off for the first --off-minutes (default 3): each
project's own retention says 0 (for ever) for every terminal status. Then UpdateProject clears
the projects' retention, the instance's 2 minutes apply, and the pruner deletes the backlog
older than that and from then on what comes due. So one run, on one server and one database,
has writes with pruning off (from 15 s in, the warm-up, until the switch) and with pruning on
(from the switch to the end); the offered load is the same throughout.

Every --interval seconds (default 5) it samples: the database's size on disk (SQLite: the file
and its -wal; PostgreSQL: pg_database_size), write RPCs completed per second (creates, worker
reports and cancels, answered OK), CreateWorkOrder's p99 latency in the interval, the work
orders deleted so far (the server's runstatus_work_orders_pruned_total) and the server's CPU.
At the end it plots size, writes/s and p99 over time (--png, default docs/soak-<backend>.png) and
prints the two figures of issue 29:
  (a) size levels off: the mean size over the last third of the run within +-10% of the middle
      third's;
  (b) writes/s with pruning on (after the switch) >= 0.9x writes/s with pruning off (before it).
Exit status 0 when both hold. A benchmark, not a test: `make test` never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import grpc.aio
import psutil
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from postgres import LocalPostgres, free_port  # noqa: E402 - scripts/postgres.py

from runstatus import retention  # noqa: E402
from runstatus.v1 import project_service_pb2 as project_pb  # noqa: E402
from runstatus.v1 import project_service_pb2_grpc as project_grpc  # noqa: E402
from runstatus.v1 import work_order_service_pb2 as wo_pb  # noqa: E402
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc  # noqa: E402
from runstatus.v1 import worker_service_pb2 as worker_pb  # noqa: E402
from runstatus.v1 import worker_service_pb2_grpc as worker_grpc  # noqa: E402
from runstatus.v1 import workflow_service_pb2 as wf_pb  # noqa: E402
from runstatus.v1 import workflow_service_pb2_grpc as wf_grpc  # noqa: E402
from runstatus.v1.error_pb2 import ErrorReport, ErrorSource  # noqa: E402
from runstatus.v1.project_pb2 import Project, RunLimit  # noqa: E402
from runstatus.v1.workflow_pb2 import Step, Workflow  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROJECTS = ("soak", "soak-limited", "soak-cancel")
WARMUP_S = 15.0
STEP_ERROR = ErrorReport(name="TypeError", message="Cannot read properties of undefined (reading 'id')",
                         language="javascript", source=ErrorSource.ERROR_SOURCE_JOB)


def start_server(db: str, metrics_port: int, keep: str, log: pathlib.Path) -> tuple[subprocess.Popen[bytes], str]:
    policy = ",".join(f"{s}={keep}" for s in ("SUCCESS", "FAILED", "CRASHED", "KILLED", "EXCEPTION", "LOST",
                                                "CANCELLED", "REJECTED"))
    # Retention is at least --request-id-seconds (60 s, or less for a quick look's shorter retention).
    request_id_s = min(60, retention.parse(f"SUCCESS={keep}").statuses[0].keep.seconds)
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "runstatus_server", "serve", "--port", "0", "--db", db,
                             "--retention", policy, "--request-id-seconds", str(request_id_s), "--sweep-seconds", "1",
                             "--metrics-port", str(metrics_port), "--web-port", "0"], stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if '"listening"' in line:
                return proc, f"127.0.0.1:{json.loads(line)['port']}"
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()}")
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def pruned_so_far(metrics_port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    return int(sum(float(v) for v in re.findall(r'^runstatus_work_orders_pruned_total\{[^}]*\} (\S+)$', text, re.M)))


@dataclass
class Counters:
    """What the load did since the last sample."""

    writes: int = 0
    creates: int = 0
    errors: int = 0
    create_latencies: list[float] = field(default_factory=list)

    def take(self) -> Counters:
        taken = Counters(self.writes, self.creates, self.errors, self.create_latencies)
        self.writes = self.creates = self.errors = 0
        self.create_latencies = []
        return taken


class Load:
    def __init__(self, channels: list[grpc.aio.Channel], rate: float, workers: int) -> None:
        self.channels = channels
        self.rate = rate
        self.workers = workers
        self.now = Counters()
        self.errors_seen: dict[str, int] = {}
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()

    def _stub(self, i: int, kind: type) -> Any:
        return kind(self.channels[i % len(self.channels)])

    def _error(self, e: grpc.aio.AioRpcError, what: str) -> None:
        self.now.errors += 1
        key = f"{what}: {e.code().name}"
        self.errors_seen[key] = self.errors_seen.get(key, 0) + 1

    async def setup(self) -> None:
        projects = self._stub(0, project_grpc.ProjectServiceStub)
        workflows = self._stub(0, wf_grpc.WorkflowServiceStub)
        for project in PROJECTS:
            limit = RunLimit(max_in_flight=1) if project == "soak-limited" else None
            await projects.CreateProject(project_pb.CreateProjectRequest(project=Project(id=project, run_limit=limit)))
            await workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(
                workflow=Workflow(project_id=project, id="wf", steps=[Step(id="main", name="main")])))
        works = self._stub(0, wo_grpc.WorkOrderServiceStub)
        await works.CreateWorkOrder(wo_pb.CreateWorkOrderRequest(project_id="soak-limited", workflow_id="wf"))

    async def set_pruning(self, on: bool, keep: str) -> None:
        projects = self._stub(0, project_grpc.ProjectServiceStub)
        spec = "" if on else ",".join(f"{s}=0" for s in ("SUCCESS", "FAILED", "CRASHED", "KILLED", "EXCEPTION",
                                                          "LOST", "CANCELLED", "REJECTED"))
        for project in PROJECTS:
            await projects.UpdateProject(project_pb.UpdateProjectRequest(
                project=Project(id=project, retention=retention.parse(spec)),
                update_mask=FieldMask(paths=["retention"])))

    async def _create(self, i: int) -> None:
        works = self._stub(i, wo_grpc.WorkOrderServiceStub)
        slot = i % 20
        project = "soak-limited" if slot == 18 else "soak-cancel" if slot == 19 else "soak"
        request = wo_pb.CreateWorkOrderRequest(project_id=project, workflow_id="wf")
        if slot in (16, 17):
            request.input.update({"fail": True})
        else:
            request.input.update({"n": i})
        began = time.perf_counter()
        try:
            created = await works.CreateWorkOrder(request)
        except grpc.aio.AioRpcError as e:
            self._error(e, "CreateWorkOrder")
            return
        self.now.create_latencies.append(time.perf_counter() - began)
        self.now.creates += 1
        self.now.writes += 1
        if slot == 19:
            try:
                await works.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id, reason="soak"))
                self.now.writes += 1
            except grpc.aio.AioRpcError as e:
                self._error(e, "CancelRun")

    async def offer(self, until: float) -> None:
        """Creates at the offered rate until `until` (monotonic), each its own task (open loop)."""
        began = time.monotonic()
        i = 0
        while not self.stopping:
            due = began + i / self.rate
            if due >= until:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._create(i))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            i += 1

    async def work(self, index: int) -> None:
        """A worker: claims up to 8 runs of project soak, and takes each through its lifecycle."""
        worker = self._stub(index, worker_grpc.WorkerServiceStub)
        while not self.stopping:
            try:
                claimed = await worker.ClaimRuns(worker_pb.ClaimRunsRequest(
                    project_id="soak", worker_id=f"soak-{index}", max_runs=8))
            except grpc.aio.AioRpcError as e:
                self._error(e, "ClaimRuns")
                await asyncio.sleep(0.1)
                continue
            if not claimed.runs:
                await asyncio.sleep(0.05)
                continue
            self.now.writes += 1
            await asyncio.gather(*(self._lifecycle(worker, run) for run in claimed.runs))

    async def _lifecycle(self, worker: Any, claimed: Any) -> None:
        run_id, token = claimed.run.id, claimed.lease_token
        fail = claimed.input.fields["fail"].bool_value if "fail" in claimed.input.fields else False
        try:
            await worker.StartRun(worker_pb.StartRunRequest(run_id=run_id, lease_token=token))
            self.now.writes += 1
            step = await worker.StartStep(worker_pb.StartStepRequest(run_id=run_id, lease_token=token,
                                                                     step_id="main"))
            self.now.writes += 1
            output = Struct()
            output.update({"ok": not fail})
            await worker.CompleteStep(worker_pb.CompleteStepRequest(
                run_id=run_id, lease_token=token, step_run_id=step.step_run.id,
                error=STEP_ERROR if fail else None, output=None if fail else output))
            self.now.writes += 1
            await worker.CompleteRun(worker_pb.CompleteRunRequest(run_id=run_id, lease_token=token))
            self.now.writes += 1
        except grpc.aio.AioRpcError as e:
            self._error(e, "lifecycle")


def database_size(backend: str, db: str, conn: Any) -> int:
    if backend == "postgres":
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    return sum(os.path.getsize(p) for p in (db, f"{db}-wal") if os.path.exists(p))


async def soak(args: argparse.Namespace, backend: str, db: str, address: str, metrics_port: int,
               server: psutil.Process) -> list[dict[str, Any]]:
    channels = [grpc.aio.insecure_channel(address) for _ in range(4)]
    load = Load(channels, args.rate, args.workers)
    await load.setup()
    await load.set_pruning(False, args.retention)
    conn = None
    if backend == "postgres":
        import psycopg

        conn = psycopg.connect(db, autocommit=True)
    total = args.minutes * 60
    off_s = args.off_minutes * 60
    start = time.monotonic()
    offering = asyncio.create_task(load.offer(start + total))
    working = [asyncio.create_task(load.work(i)) for i in range(args.workers)]
    samples: list[dict[str, Any]] = []
    pruning = False
    last = start
    server.cpu_percent()
    pruned_before = pruned_so_far(metrics_port)
    while True:
        await asyncio.sleep(max(0.0, start + (len(samples) + 1) * args.interval - time.monotonic()))
        now = time.monotonic()
        if not pruning and now - start >= off_s:
            await load.set_pruning(True, args.retention)
            pruning = True
        got = load.now.take()
        lat = sorted(got.create_latencies)
        sample = {"t": now - start, "pruning": pruning, "size": database_size(backend, db, conn),
                  "writes_per_s": got.writes / (now - last), "creates_per_s": got.creates / (now - last),
                  "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0,
                  "errors": got.errors, "pruned": pruned_so_far(metrics_port) - pruned_before,
                  "server_cpu": server.cpu_percent() / 100}
        samples.append(sample)
        last = now
        print(f"  {sample['t']:6.0f} s  pruning {'on ' if pruning else 'off'}  size {sample['size'] / 1e6:8.2f} MB  "
              f"writes {sample['writes_per_s']:6.0f}/s  creates {sample['creates_per_s']:5.0f}/s  "
              f"p99 {sample['p99_ms']:6.1f} ms  pruned {sample['pruned']:8d}  server CPU {sample['server_cpu']:.2f}"
              f"{'  errors ' + str(got.errors) if got.errors else ''}", flush=True)
        if now - start >= total:
            break
    load.stopping = True
    await offering
    for task in working:
        task.cancel()
    await asyncio.gather(*working, *list(load.tasks), return_exceptions=True)
    for ch in channels:
        await ch.close()
    if conn is not None:
        conn.close()
    if load.errors_seen:
        print(f"  errors: {load.errors_seen}")
    return samples


def figures(samples: list[dict[str, Any]], total_s: float) -> dict[str, float]:
    middle = [s["size"] for s in samples if total_s / 3 <= s["t"] < 2 * total_s / 3]
    last = [s["size"] for s in samples if s["t"] >= 2 * total_s / 3]
    off = [s for s in samples if not s["pruning"] and s["t"] > WARMUP_S]
    on = [s for s in samples if s["pruning"]]
    return {
        "middle_mb": statistics.mean(middle) / 1e6, "last_mb": statistics.mean(last) / 1e6,
        "size_ratio": statistics.mean(last) / statistics.mean(middle),
        "off_writes": statistics.mean(s["writes_per_s"] for s in off),
        "on_writes": statistics.mean(s["writes_per_s"] for s in on),
        "off_creates": statistics.mean(s["creates_per_s"] for s in off),
        "on_creates": statistics.mean(s["creates_per_s"] for s in on),
        "off_p99": statistics.median(s["p99_ms"] for s in off),
        "on_p99": statistics.median(s["p99_ms"] for s in on),
        "worst_p99": max(s["p99_ms"] for s in samples),
        "pruned": samples[-1]["pruned"],
        "server_cpu": statistics.mean(s["server_cpu"] for s in samples),
    }


def plot(samples: list[dict[str, Any]], f: dict[str, float], args: argparse.Namespace, backend: str,
         png: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in samples]
    fig, (size_ax, write_ax, lat_ax) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    size_ax.plot(t, [s["size"] / 1e6 for s in samples], color="tab:blue")
    size_ax.set_ylabel("database on disk (MB)")
    total = args.minutes
    for third in (total / 3, 2 * total / 3):
        size_ax.axvline(third, color="grey", linestyle=":", linewidth=1)
    size_ax.hlines([f["middle_mb"], f["last_mb"]], [total / 3, 2 * total / 3], [2 * total / 3, total],
                   color="tab:orange", label="mean of the middle and last thirds")
    size_ax.legend(loc="lower right")
    size_ax.set_ylim(bottom=0)
    write_ax.plot(t, [s["writes_per_s"] for s in samples], color="tab:green", label="write RPCs answered per s")
    write_ax.plot(t, [s["creates_per_s"] for s in samples], color="tab:olive", label="of which CreateWorkOrder")
    write_ax.set_ylabel("per second")
    write_ax.set_ylim(bottom=0)
    pruned_ax = write_ax.twinx()
    pruned = [s["pruned"] for s in samples]
    pruned_ax.plot(t, pruned, color="tab:red", linestyle="--", label="work orders deleted (total)")
    pruned_ax.set_ylabel("deleted so far")
    lines = write_ax.get_legend_handles_labels()[0] + pruned_ax.get_legend_handles_labels()[0]
    write_ax.legend(lines, [str(line.get_label()) for line in lines], loc="center right")
    lat_ax.plot(t, [s["p99_ms"] for s in samples], color="tab:purple")
    lat_ax.set_ylabel("CreateWorkOrder p99 (ms, log)")
    lat_ax.set_xlabel("minutes")
    lat_ax.set_yscale("log")
    for ax in (size_ax, write_ax, lat_ax):
        ax.axvspan(0, args.off_minutes, color="grey", alpha=0.12, label="pruning off")
        ax.grid(alpha=0.3)
    fig.suptitle(f"runstatus retention soak, {backend}: {args.rate:g} creates/s offered, retention "
                 f"{args.retention}, pruning off for the first {args.off_minutes:g} min (shaded)\n"
                 f"size last/middle third {f['size_ratio']:.2f}x, writes on/off {f['on_writes'] / f['off_writes']:.2f}x, "
                 f"CreateWorkOrder p99 median off {f['off_p99']:.1f} ms, on {f['on_p99']:.1f} ms", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--minutes", type=float, default=15.0, help="the whole run")
    parser.add_argument("--off-minutes", type=float, default=3.0, help="pruning off for this long first")
    parser.add_argument("--retention", default="2m", help="how long ended work orders are kept (every status)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="creates offered per second (default: 60 on SQLite, 25 on PostgreSQL)")
    parser.add_argument("--workers", type=int, default=4, help="worker coroutines, each claiming up to 8 runs")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--png", type=pathlib.Path, default=None, help="the plot (default docs/soak-BACKEND.png)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (database, server log)")
    parser.add_argument("--replot", type=pathlib.Path, default=None,
                        help="no run: plot and judge the samples a run saved (give its other options too)")
    args = parser.parse_args()
    args.rate = args.rate or (60.0 if args.backend == "sqlite" else 25.0)
    png = args.png or ROOT / "docs" / f"soak-{args.backend}.png"
    if args.replot:
        return report(json.loads(args.replot.read_text()), args, png)
    work = pathlib.Path(tempfile.mkdtemp(prefix="runstatus-soak-"))
    pg = None
    if args.backend == "postgres":
        work.chmod(0o711)
        pg = LocalPostgres(fsync=True, parent=str(work)).start()
        db = pg.create_database("soak")
    else:
        db = str(work / "soak.db")
    metrics_port = free_port()
    proc, address = start_server(db, metrics_port, args.retention, work / "server.log")
    try:
        print(f"soak: {args.backend}, {args.rate:g} creates/s offered for {args.minutes:g} min, retention "
              f"{args.retention}, pruning off for {args.off_minutes:g} min, {os.cpu_count()} cores, "
              f"work directory {work}", flush=True)
        random.seed(1)
        samples = asyncio.run(soak(args, args.backend, db, address, metrics_port, psutil.Process(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(60)
        if pg is not None:
            pg.stop()
            pg.remove()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    saved = work.parent / f"soak-{args.backend}-{os.getpid()}.json"
    saved.write_text(json.dumps(samples))
    print(f"samples: {saved} (--replot)")
    return report(samples, args, png)


def report(samples: list[dict[str, Any]], args: argparse.Namespace, png: pathlib.Path) -> int:
    f = figures(samples, args.minutes * 60)
    plot(samples, f, args, args.backend, png)
    size_ok = 0.9 <= f["size_ratio"] <= 1.1
    writes_ok = f["on_writes"] >= 0.9 * f["off_writes"]
    print(f"(a) size: middle third {f['middle_mb']:.2f} MB, last third {f['last_mb']:.2f} MB: "
          f"{f['size_ratio']:.3f}x (target 0.9-1.1) {'met' if size_ok else 'NOT MET'}")
    print(f"(b) writes/s: pruning off {f['off_writes']:.1f}, on {f['on_writes']:.1f}: "
          f"{f['on_writes'] / f['off_writes']:.3f}x (target >= 0.9) {'met' if writes_ok else 'NOT MET'}; "
          f"creates/s off {f['off_creates']:.1f}, on {f['on_creates']:.1f} (offered {args.rate:g})")
    print(f"    CreateWorkOrder p99 (median of the {args.interval:g} s samples): off {f['off_p99']:.1f} ms, "
          f"on {f['on_p99']:.1f} ms, worst sample {f['worst_p99']:.1f} ms; {f['pruned']} work orders deleted; "
          f"server CPU {f['server_cpu']:.2f} cores on average")
    print(f"plot: {png}")
    return 0 if size_ok and writes_ok else 1


if __name__ == "__main__":
    sys.exit(main())
