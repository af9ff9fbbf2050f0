"""Several runstatus servers on one PostgreSQL, behind one address: the Python client, given a
target that names them all, spreads its calls over every server (round_robin) and goes on
through the others when one dies; `make serve-postgres` runs runstatus on a PostgreSQL of its
own and removes it afterwards."""

from __future__ import annotations

import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import ServerProcess, free_port, scrape
from runstatus import Client
from runstatus.v1.status_pb2 import RunStatus

pytestmark = pytest.mark.postgres

pytest_plugins = ["pg"]

ROOT = pathlib.Path(__file__).resolve().parent.parent



def created_through(metrics_port: int) -> int:
    """How many CreateWorkOrder calls this server answered OK (its Prometheus metrics)."""
    text = scrape(metrics_port)
    found = re.search(r'runstatus_rpcs_total\{code="OK",method="WorkOrderService.CreateWorkOrder"\} ([0-9.e+]+)', text)
    return int(float(found.group(1))) if found else 0


def test_one_target_naming_every_server_spreads_calls_and_survives_one_dying(
        pg_url: str, tmp_path: pathlib.Path) -> None:
    metrics = [free_port(), free_port()]
    servers = [ServerProcess(pg_url, "--metrics-port", str(port), log_dir=tmp_path).start() for port in metrics]
    try:
        target = "ipv4:" + ",".join(server.address for server in servers)
        with Client(target) as rs:
            rs.create_workflow("wf", ["a"])
            made = [rs.create_work_order("wf").id for _ in range(20)]
            spread = [created_through(port) for port in metrics]
            assert sum(spread) == 20 and min(spread) >= 5, spread  # round_robin: about half each
            servers[0].kill()
            # Calls go on through the other server (a call caught by the kill is retried on
            # UNAVAILABLE), and what the dead one acknowledged is there.
            made += [rs.create_work_order("wf").id for _ in range(10)]
            assert {w.id for w in rs.list_work_orders()} == set(made)
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()


def test_serve_postgres_starts_runstatus_on_a_postgresql_of_its_own_and_removes_it(tmp_path: pathlib.Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "postgres.py"), "--serve", sys.executable,
                                 "-m", "runstatus_server", "serve", "--port", str(port)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 90
        while '"listening"' not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        pg_address = re.search(r"postgresql://\S+@127\.0\.0\.1:(\d+)/runstatus", log.read_text())
        assert pg_address, log.read_text()
        with Client(f"127.0.0.1:{port}") as rs:
            rs.create_workflow("wf", ["a"])
            assert rs.create_work_order("wf").status == RunStatus.RUN_STATUS_PENDING
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    # Its PostgreSQL went with it: nothing listens on its port any more.
    pg_port = int(pg_address.group(1))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", pg_port), timeout=2).close()
