"""Writers must not feel retention (issue 29): CreateWorkOrder throughput with pruning off and on,
in the same run, on the same server and database.

    .venv/bin/python scripts/retention_bench.py                      # SQLite
    .venv/bin/python scripts/retention_bench.py --backend postgres   # a throwaway PostgreSQL (fsync on)
    .venv/bin/python scripts/retention_bench.py --seconds 20 --rounds 3 --concurrency 32

The project has a run limit of one run in flight, held by one pending run: every work order
created after it is stored REJECTED, ended at once, so that with retention on (REJECTED=2s,
set by UpdateProject between phases) the pruner deletes work orders as fast as they are made,
and at first the backlog the phases before left. Phases alternate off, on, off, on... (each
--seconds long, after an untimed warm-up; an 'off' phase begins once the deletions of the pass
under way have stopped): a drift of the machine or of the database's size weighs on both alike.
It prints each phase's creates per second and p99 latency, the work orders deleted during it
(the server's runstatus_work_orders_pruned), and the ratio on / off (target >= 0.9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import grpc.aio
from google.protobuf.field_mask_pb2 import FieldMask

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from postgres import LocalPostgres, free_port  # noqa: E402 - scripts/postgres.py

from runstatus import retention  # noqa: E402
from runstatus.v1 import project_service_pb2 as project_pb  # noqa: E402
from runstatus.v1 import project_service_pb2_grpc as project_grpc  # noqa: E402
from runstatus.v1 import work_order_service_pb2 as wo_pb  # noqa: E402
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc  # noqa: E402
from runstatus.v1 import workflow_service_pb2 as wf_pb  # noqa: E402
from runstatus.v1 import workflow_service_pb2_grpc as wf_grpc  # noqa: E402
from runstatus.v1.project_pb2 import Project, RunLimit  # noqa: E402
from runstatus.v1.workflow_pb2 import Step, Workflow  # noqa: E402

PROJECT = "bench"
ON = "REJECTED=2s"


def start_server(db: str, metrics_port: int, log: pathlib.Path) -> tuple[subprocess.Popen[bytes], str]:
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "runstatus_server", "serve", "--port", "0", "--db", db,
                             "--request-id-seconds", "1", "--sweep-seconds", "0.5", "--metrics-port",
                             str(metrics_port)], stdout=out, stderr=out)
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


async def setup(channel: grpc.aio.Channel) -> str:
    projects = project_grpc.ProjectServiceStub(channel)
    await projects.CreateProject(project_pb.CreateProjectRequest(
        project=Project(id=PROJECT, run_limit=RunLimit(max_in_flight=1))))
    workflows = wf_grpc.WorkflowServiceStub(channel)
    await workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(
        workflow=Workflow(project_id=PROJECT, id="wf", steps=[Step(id="a", name="a")])))
    works = wo_grpc.WorkOrderServiceStub(channel)
    await works.CreateWorkOrder(wo_pb.CreateWorkOrderRequest(project_id=PROJECT, workflow_id="wf"))  # holds the limit
    return "wf"


async def set_retention(channel: grpc.aio.Channel, spec: str) -> None:
    projects = project_grpc.ProjectServiceStub(channel)
    await projects.UpdateProject(project_pb.UpdateProjectRequest(
        project=Project(id=PROJECT, retention=retention.parse(spec)), update_mask=FieldMask(paths=["retention"])))


async def load(channel: grpc.aio.Channel, seconds: float, concurrency: int) -> tuple[int, list[float]]:
    works = wo_grpc.WorkOrderServiceStub(channel)
    request = wo_pb.CreateWorkOrderRequest(project_id=PROJECT, workflow_id="wf")
    latencies: list[float] = []
    end = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < end:
            began = time.perf_counter()
            await works.CreateWorkOrder(request)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return len(latencies), latencies


async def run(address: str, metrics_port: int, seconds: float, rounds: int, concurrency: int,
              policy: str) -> list[dict[str, Any]]:
    channels = [grpc.aio.insecure_channel(address) for _ in range(4)]  # a few connections, as clients would
    await setup(channels[0])
    await load(channels[0], 3, concurrency)  # warm-up, untimed
    phases = []
    for i in range(2 * rounds):
        pruning = i % 2 == 1
        await set_retention(channels[0], policy if pruning else "")
        if not pruning:
            # A pass under way goes on with the rules it read: the 'off' phase begins once no work
            # order has been deleted for a second (under load), so no deletion counts as 'off'.
            for _ in range(60):
                settled = pruned_so_far(metrics_port)
                await asyncio.gather(*(load(ch, 1.0, max(1, concurrency // len(channels))) for ch in channels))
                if pruned_so_far(metrics_port) == settled:
                    break
        before = pruned_so_far(metrics_port)
        began = time.monotonic()
        results = await asyncio.gather(*(load(ch, seconds, max(1, concurrency // len(channels))) for ch in channels))
        took = time.monotonic() - began
        count = sum(n for n, _ in results)
        latencies = sorted(x for _, lat in results for x in lat)
        phases.append({"pruning": pruning, "creates_per_s": count / took,
                       "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
                       "pruned": pruned_so_far(metrics_port) - before})
        print(f"  phase {i + 1}: pruning {'on ' if pruning else 'off'}  {count / took:8.0f} creates/s  "
              f"p99 {phases[-1]['p99_ms']:6.1f} ms  deleted meanwhile {phases[-1]['pruned']:7d}", flush=True)
    for ch in channels:
        await ch.close()
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=15.0, help="each phase's length")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of phases (off, on)")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight at once")
    parser.add_argument("--policy", default=ON, help="the project's retention in the 'on' phases")
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="retention-bench-"))
    pg = None
    if args.backend == "postgres":
        pg = LocalPostgres(fsync=True).start()
        db = pg.create_database("bench")
    else:
        db = str(work / "bench.db")
    metrics_port = free_port()
    proc, address = start_server(db, metrics_port, work / "server.log")
    try:
        print(f"retention bench: {args.backend}, {args.concurrency} calls in flight, {args.rounds} x (off, on) "
              f"of {args.seconds:g} s, on {os.cpu_count()} cores")
        phases = asyncio.run(run(address, metrics_port, args.seconds, args.rounds, args.concurrency, args.policy))
    finally:
        proc.terminate()
        proc.wait(60)
        if pg is not None:
            pg.stop()
            pg.remove()
    off = statistics.mean(p["creates_per_s"] for p in phases if not p["pruning"])
    on = statistics.mean(p["creates_per_s"] for p in phases if p["pruning"])
    deleted = sum(p["pruned"] for p in phases if p["pruning"])
    print(f"creates/s with pruning off {off:.0f}, on {on:.0f}: ratio {on / off:.2f} (target >= 0.9); "
          f"{deleted} work orders deleted during the 'on' phases")
    return 0 if on / off >= 0.9 and deleted > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
