"""How much the kept answers of request ids take: the database size after N requests with ids.

    .venv/bin/python scripts/kept_answers_size.py                  # this checkout
    .venv/bin/python scripts/kept_answers_size.py --tree /tmp/old  # another checkout's server

Half the requests are CreateWorkOrder (a 1 KB input), half ClaimRuns of one run each, on a
workflow of 20 KB; every one carries a request_id. Prints the database's size with and
without the requests table's rows.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sqlite3
import sys
import tempfile
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import Client, ServerProcess  # noqa: E402
from runstatus.v1 import worker_service_pb2 as worker_pb  # noqa: E402
from runstatus.v1 import workflow_service_pb2 as wf_pb  # noqa: E402
from runstatus.v1.workflow_pb2 import Step, Workflow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--tree", help="run the server of this checkout instead")
    args = parser.parse_args()
    if args.tree:
        os.environ["PYTHONPATH"] = os.pathsep.join(str(pathlib.Path(args.tree) / p) for p in ("clients/python", "server"))
    with tempfile.TemporaryDirectory() as tmp:
        db = pathlib.Path(tmp) / "kept.db"
        server = ServerProcess(db).start()
        c = Client(server.address)
        c.new_project()
        wf = c.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(workflow=Workflow(
            id="w", project_id=c.project_id, steps=[Step(id="a", body="x" * 20_000)]))).workflow
        half = args.requests // 2
        for i in range(half):
            c.work_order(wf, {"patient": i, "notes": "n" * 1000}, request_id=str(uuid.uuid4()))
        for _ in range(half):
            c.worker.ClaimRuns(worker_pb.ClaimRunsRequest(
                project_id=c.project_id, worker_id="w", max_runs=1, request_id=str(uuid.uuid4())))
        c.close()
        server.stop()
        with sqlite3.connect(db) as conn:
            kept = conn.execute("SELECT count(*), coalesce(sum(length(response)), 0) FROM requests").fetchone()
        size = db.stat().st_size
        print(f"{args.requests} requests with ids: database {size / 1e6:.1f} MB; "
              f"{kept[0]} kept answers of {kept[1] / 1e6:.1f} MB ({kept[1] / max(kept[0], 1):.0f} bytes each)")


if __name__ == "__main__":
    main()
