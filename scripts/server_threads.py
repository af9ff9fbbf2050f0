"""Where a runstatus server's CPU goes by thread, and its throughput, under CreateWorkOrder
from ghz at each concurrency (issue 30: is a figure bound by a core, or by waiting?).

    PATH=.tools/bin:$PATH .venv/bin/python scripts/server_threads.py [--concurrency 8,16,32,64]
        [--seconds 8] [--server-src DIR] [--server-arg=--otel ...]

One SQLite server on a fresh file (scripts/bench.py's setup: its workflow, its requests), 2 s of
warm-up, then each point: creates/s, and each busy thread's cores and CPU µs per create, from
/proc (the event loop is the process's main thread; Python names the others only to itself:
`py-spy dump --pid` maps them). A loop thread well short of one core while throughput still
grows with the clients is waiting on something, not out of CPU.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402
from harness import Client  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[tuple[str, str], float]:
    """CPU seconds so far of each thread of the process, by (tid, name)."""
    seconds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = pathlib.Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            name = pathlib.Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:
            continue  # ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        seconds[(tid, "event loop" if int(tid) == pid else name)] = (int(fields[11]) + int(fields[12])) / TICK
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="8,16,32,64")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--server-src", help="a checkout whose server runs instead of this one")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="one more argument to `runstatus serve` (e.g. --server-arg=--otel; the server takes "
                             "OTEL_* from this environment)")
    args = parser.parse_args()
    if args.server_src:
        src = pathlib.Path(args.server_src).resolve()
        bench.SERVER_PATH[:] = [str(src / "server"), str(src / "clients" / "python")]
    with tempfile.TemporaryDirectory(prefix="runstatus-threads-") as tmp:
        work = pathlib.Path(tmp)
        server = bench.runstatus_server("runstatus", work / "runstatus.db", work, *args.server_arg).start()
        try:
            assert server.proc is not None
            client = Client(server.address)
            try:
                client.workflow(["main"], wid=bench.CREATE_WORKFLOW)
            finally:
                client.close()
            bench.write_protoset(work / "runstatus.protoset")
            create = bench.WORKLOADS["create"]

            def ghz(clients: int, seconds: float) -> float:
                return float(bench.run_ghz(create.call, bench.ghz_data("create", []), server.address, clients,
                                           seconds, clients, work)["rps"])

            ghz(16, 2)
            for clients in (int(c) for c in args.concurrency.split(",")):
                before = thread_cpu(server.proc.pid)
                began = time.perf_counter()
                rate = ghz(clients, args.seconds)
                elapsed = time.perf_counter() - began
                after = thread_cpu(server.proc.pid)
                print(f"c={clients}: {rate:,.0f} creates/s")
                for key in sorted(after, key=lambda k: before.get(k, 0) - after[k]):
                    cores = (after[key] - before.get(key, 0)) / elapsed
                    if cores >= 0.01:
                        print(f"  {key[1]:16} tid {key[0]:>7}  {cores:.2f} cores  {cores / rate * 1e6:4.0f} µs a create")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
