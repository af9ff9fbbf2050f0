"""What concurrent Lists and claims of large rows cost the server (issue 26, item 5).

    RUNSTATUS_TEST_DB=postgres .venv/bin/python scripts/list_memory.py [WORK_ORDERS]

Starts a server (the tests' harness: SQLite, or a throwaway PostgreSQL under
RUNSTATUS_TEST_DB=postgres) and creates WORK_ORDERS (default 200) work orders with ~1 MiB
inputs. Then, from 4 threads at once: each walks every page of ListWorkOrders (page_size 1000)
3 times; then each claims runs (max_runs 100) until none is left. Meanwhile another process
calls GetProject back to back. For each, prints the server's peak RSS over its RSS before
(VmHWM, reset first, and VmRSS sampled every 5 ms) and GetProject's latencies. Not a test:
measured, never asserted (tests/test_large_rows.py holds a generous bound on the RSS).
"""

import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from harness import BACKEND, Client, ServerProcess, rss_kib  # noqa: E402

from runstatus.v1 import project_service_pb2 as project_pb  # noqa: E402
from runstatus.v1 import work_order_service_pb2 as wo_pb  # noqa: E402

THREADS = 4


def measure(server: ServerProcess, project: str, what: str, work: Callable[[Client], int]) -> None:
    """Runs `work` in THREADS threads at once, each with a client of its own, and prints what
    it cost the server; `work` returns how many items it got."""
    assert server.proc is not None
    pid = server.proc.pid
    before = rss_kib(pid)["VmRSS"]
    pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS
    sampled = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            sampled.append(rss_kib(pid)["VmRSS"])
            time.sleep(0.005)

    # GetProject from a process of its own: this one's GIL, busy with the answers, would
    # delay it as much as the server does.
    prober = subprocess.Popen([sys.executable, __file__, "--probe", server.address, project],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    sampler = threading.Thread(target=sample)
    sampler.start()
    got: list[int] = []

    def run() -> None:
        client = Client(server.address)
        got.append(work(client))
        client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    done.set()
    sampler.join()
    out, _ = prober.communicate("stop\n", timeout=60)
    latencies = sorted(float(t) for t in out.split())
    peak = max(rss_kib(pid)["VmHWM"], max(sampled))
    print(f"{BACKEND}: {what}: {sum(got)} items in {took:.1f} s; server RSS {before / 1024:.0f} MiB before, "
          f"peak +{(peak - before) / 1024:.0f} MiB; GetProject meanwhile ({len(latencies)} calls): "
          f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    tmp = pathlib.Path(tempfile.mkdtemp())
    server = ServerProcess(tmp / "memory.db").start()
    try:
        c = Client(server.address)
        project = c.new_project()
        wf = c.workflow(["a"])
        for i in range(count):
            c.work_order(wf, {"blob": f"{i:08d}" + "x" * 1_000_000})

        def page(client: Client, page_size: int, token: str = "") -> wo_pb.ListWorkOrdersResponse:
            return client.work_orders.ListWorkOrders(wo_pb.ListWorkOrdersRequest(
                project_id=project, page_size=page_size, page_token=token), timeout=600)

        # What any server holds once it has answered a few calls at once (a connection per
        # reader thread, its cache): one small page from each of 4 calls at once.
        warm = [threading.Thread(target=lambda: page(Client(server.address), 1)) for _ in range(THREADS)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        time.sleep(1)

        def walk(client: Client) -> int:
            n = 0
            for _ in range(3):
                token = ""
                while True:
                    answer = page(client, 1000, token)
                    n += len(answer.work_orders)
                    if not (token := answer.next_page_token):
                        break
            return n

        def claim(client: Client) -> int:
            n = 0
            while runs := client.claim(project, max_runs=100):
                n += len(runs)
            return n

        measure(server, project, f"{THREADS} threads walking the pages of {count} work orders of ~1 MiB 3 times", walk)
        measure(server, project, f"{THREADS} threads claiming {count} runs of ~1 MiB inputs, 100 at a time", claim)
        c.close()
    finally:
        server.stop()


def probe(address: str, project: str) -> None:
    """GetProject back to back until a line comes on stdin; prints each latency in seconds."""
    client = Client(address)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    latencies = []
    while not stop.is_set():
        start = time.perf_counter()
        client.projects.GetProject(project_pb.GetProjectRequest(project_id=project))
        latencies.append(time.perf_counter() - start)
    print(" ".join(f"{t:.6f}" for t in latencies))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        probe(*sys.argv[2:4])
    else:
        main()
