"""What the notifications' scan costs the writers, and how soon a notification arrives (issue 27).

    .venv/bin/python scripts/notify_bench.py [--seconds 8] [--rounds 3] [--concurrency 16] [--db-url postgresql://...]

CreateWorkOrder throughput (a grpc.aio load from this process, one project) against a fresh
runstatus on SQLite (or the PostgreSQL database --db-url names, emptied between servers), in
turns: without any subscription (no scan), with --admin-webhook (the leader scans every commit's
events; none of them is owed anything), and with ten more subscriptions written into the
database. Each configuration runs --rounds times, interleaved; the median is reported, and its
ratio to no subscription. Then, with the webhook: 200 runs go LOST at once, and the time from
each event (its `time`) to its arrival at a receiver on loopback (p50, p99); and the same with
one more subscription beside it whose receiver hangs on every request (it must delay the
healthy one's deliveries not at all). A figure of a shared 2-core machine: the load generator
shares it.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import grpc

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness import Client, ServerProcess, query  # noqa: E402
from runstatus.v1 import work_order_service_pb2 as wo_pb  # noqa: E402
from runstatus.v1 import work_order_service_pb2_grpc as wo_grpc  # noqa: E402


class Hung(http.server.ThreadingHTTPServer):
    """Reads every POST and never answers (until shut down)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.stopping = threading.Event()
        hung = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                hung.stopping.wait()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hung"


class Receiver(http.server.ThreadingHTTPServer):
    """Takes every POST (204) and keeps (event time, arrival time) by delivery id."""

    daemon_threads = True
    # socketserver's default listen backlog is 5: past it Linux drops the SYN of the 16 connections
    # a subscription opens at once, and the client sends it again 1 s later (a receiver's cost,
    # not the notifier's: it made the slowest 1-2% of deliveries a second late).
    request_queue_size = 128

    def __init__(self) -> None:
        self.arrivals: dict[str, tuple[float, float]] = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                arrived = time.time()
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                happened = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
                receiver.arrivals.setdefault(self.headers["Runstatus-Delivery"], (happened, arrived))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


async def create_load(address: str, project_id: str, workflow_id: str, concurrency: int, seconds: float) -> float:
    """CreateWorkOrder from `concurrency` callers for `seconds`: acknowledged creates a second."""
    done = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = wo_grpc.WorkOrderServiceStub(channel)
        request = wo_pb.CreateWorkOrderRequest(project_id=project_id, workflow_id=workflow_id)
        end = time.monotonic() + seconds

        async def caller() -> None:
            nonlocal done
            while time.monotonic() < end:
                await stub.CreateWorkOrder(request)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


def add_subscriptions(db: str, url: str, n: int) -> None:
    """n more subscriptions to LOST runs, straight into the database."""
    now = int(time.time() * 1e6)
    rows = [(f"bench-{i}", "", "webhook", url, "", json.dumps({"statuses": ["RUN_STATUS_LOST"]}), now, now)
            for i in range(n)]
    sql = ("INSERT INTO notification_subscriptions (id, project_id, target_kind, target, secret, event_filter, "
           "scan_cursor, create_time, update_time) VALUES (?, ?, ?, ?, ?, ?, "
           "(SELECT coalesce(max(seq), 0) FROM events), ?, ?)")
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as conn:
            for row in rows:
                conn.execute(sql.replace("?", "%s"), row)
    else:
        import sqlite3

        with sqlite3.connect(db) as conn:
            conn.executemany(sql, rows)


def fresh_db(args: argparse.Namespace, work: pathlib.Path) -> str:
    if not args.db_url:
        return str(work / f"{uuid.uuid4().hex[:8]}.db")
    import psycopg

    with psycopg.connect(args.db_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return str(args.db_url)


def measure(args: argparse.Namespace, work: pathlib.Path, receiver: Receiver, config: str) -> tuple[float, float]:
    """Creates a second, and the server's CPU microseconds per create."""
    db = fresh_db(args, work)
    webhook = ("--admin-webhook", receiver.url, "--notify-allow-private") if config != "none" else ()
    server = ServerProcess(db, *webhook, log_dir=work).start(timeout=60)
    try:
        if config == "webhook+10":
            add_subscriptions(server.db, receiver.url, 10)
        client = Client(server.address)
        project_id = client.new_project()
        workflow = client.workflow(["a"])
        client.close()
        asyncio.run(create_load(server.address, project_id, workflow.id, args.concurrency, 1.0))  # warm-up
        assert server.proc is not None
        cpu = cpu_seconds(server.proc.pid)
        rate = asyncio.run(create_load(server.address, project_id, workflow.id, args.concurrency, args.seconds))
        return rate, (cpu_seconds(server.proc.pid) - cpu) / (rate * args.seconds) * 1e6
    finally:
        server.stop()


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (user and system): less swayed by a busy machine than a rate."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(args: argparse.Namespace, work: pathlib.Path, receiver: Receiver, runs: int = 200,
            hung_url: str = "") -> list[float]:
    """Seconds from each LOST event to its arrival at the admin webhook, for `runs` runs lost at
    once; with `hung_url`, one more subscription to them goes there."""
    receiver.arrivals.clear()
    server = ServerProcess(fresh_db(args, work), "--admin-webhook", receiver.url, "--lease-seconds", "1",
                           "--sweep-seconds", "0.2", "--notify-allow-private", log_dir=work).start(timeout=60)
    try:
        if hung_url:
            add_subscriptions(server.db, hung_url, 1)
        client = Client(server.address)
        client.new_project()
        workflow = client.workflow(["a"])
        for _ in range(runs):
            client.work_order(workflow)
        claimed = 0
        while claimed < runs:
            claimed += len(client.claim(max_runs=50))
        client.close()
        deadline = time.monotonic() + 120
        while len(receiver.arrivals) < runs and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.arrivals) == runs, f"{len(receiver.arrivals)} of {runs} arrived"
        while query(server.db, "SELECT count(*) FROM notification_deliveries WHERE state = 1 AND "
                               "subscription_id = 'admin-webhook'")[0][0] < runs:
            assert time.monotonic() < deadline, "not all recorded delivered"
            time.sleep(0.1)
        return sorted(arrived - happened for happened, arrived in receiver.arrivals.values())
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--db-url", default="", help="a PostgreSQL database to use (emptied!); default SQLite")
    args = parser.parse_args()
    receiver = Receiver()
    configs = ["none", "webhook", "webhook+10"]
    rates: dict[str, list[float]] = {c: [] for c in configs}
    costs: dict[str, list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as folder:
        work = pathlib.Path(folder)
        for round_ in range(args.rounds):
            for config in configs if round_ % 2 == 0 else reversed(configs):
                rate, cost = measure(args, work, receiver, config)
                rates[config].append(rate)
                costs[config].append(cost)
                print(f"round {round_ + 1} {config:>10}: {rate:7.0f} creates/s, {cost:5.0f} us server CPU each",
                      flush=True)
        delays = latency(args, work, receiver)
        hung = Hung()
        delays_hung = latency(args, work, receiver, hung_url=hung.url)
        hung.stopping.set()
        hung.shutdown()
    base, base_cost = statistics.median(rates["none"]), statistics.median(costs["none"])
    print(f"\nCreateWorkOrder, {args.concurrency} callers, {args.seconds:g} s x {args.rounds} "
          f"({'PostgreSQL' if args.db_url else 'SQLite'}; {os.cpu_count()} cores):")
    for config in configs:
        median, cost = statistics.median(rates[config]), statistics.median(costs[config])
        print(f"  {config:>10}: {median:7.0f} creates/s  {median / base:.2f}x   server CPU {cost:4.0f} us/create "
              f"{cost / base_cost:.2f}x   (rates: {', '.join(f'{r:.0f}' for r in rates[config])})")
    for what, seconds in (("", delays), (", a hung subscription beside", delays_hung)):
        p = statistics.quantiles(seconds, n=100)
        print(f"LOST event -> received, {len(seconds)} runs lost at once{what}: p50 {p[49] * 1000:.0f} ms, "
              f"p99 {p[98] * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms")
    receiver.shutdown()


if __name__ == "__main__":
    main()
