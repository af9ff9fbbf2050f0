"""The benchmark's baseline: a bare grpc.aio server that does no work.

It is set up as runstatus's Server.start sets up its server (the same grpc.aio
server, the same options: message size limits and so_reuseport; health and
reflection), and answers grpc.health.v1.Health/Check from the stock health
servicer. It also answers runstatus.v1.ClassifierService/Classify with a
constant, for a baseline of the same shape as a runstatus call. Whatever
runstatus does beyond this is the cost of its own work.

With --db it also answers runstatus.v1.WorkOrderService/CreateWorkOrder the
cheapest durable way: one INSERT of the request's bytes, group-committed as
runstatus commits (WAL, synchronous=FULL, the INSERT on the loop, the COMMIT on
a thread, the caller answered after it). No checks, ids, run or event: the
floor under any durable write in this stack, measured as the "floor" workload.

    .venv/bin/python scripts/baseline_server.py --port 0 [--db /tmp/floor.db]
    .venv/bin/python scripts/baseline_server.py --port 0 --processes 2   # SO_REUSEPORT

Like runstatus it logs one JSON line with "listening" and the port on stderr,
and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from runstatus.v1 import (
    classifier_service_pb2,
    classifier_service_pb2_grpc,
    work_order_service_pb2,
    work_order_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)
from runstatus.v1.error_pb2 import Classification
from runstatus.v1.status_pb2 import ErrorType, RunStatus

# The same values as runstatus_server.server.Settings' defaults.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
CLASSIFIER = classifier_service_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name

# Built once: the handler does nothing but return it.
CONSTANT = classifier_service_pb2.ClassifyResponse(classification=Classification(
    status=RunStatus.RUN_STATUS_FAILED, error_type=ErrorType.ERROR_TYPE_TYPE_ERROR, aborts_run=False,
    rule="seed:TypeError",
))


class ConstantClassifier(classifier_service_pb2_grpc.ClassifierServiceServicer):
    async def Classify(self, request: classifier_service_pb2.ClassifyRequest,
                       context: grpc.aio.ServicerContext) -> classifier_service_pb2.ClassifyResponse:
        return CONSTANT


class DurableInsert(work_order_service_pb2_grpc.WorkOrderServiceServicer):
    """CreateWorkOrder as one group-committed INSERT; answers a constant once it is durable."""

    ANSWER = work_order_service_pb2.CreateWorkOrderResponse()

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS floor (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        self.committer = ThreadPoolExecutor(max_workers=1)
        self.batch: list[asyncio.Future[None]] | None = None  # the open transaction's callers
        self.turn: list[asyncio.Future[None]] | None = None  # callers waiting out a COMMIT

    async def CreateWorkOrder(self, request: work_order_service_pb2.CreateWorkOrderRequest,
                              context: grpc.aio.ServicerContext) -> work_order_service_pb2.CreateWorkOrderResponse:
        loop = asyncio.get_running_loop()
        while self.turn is not None:
            waiting = loop.create_future()
            self.turn.append(waiting)
            await waiting
        if self.batch is None:
            self.conn.execute("BEGIN IMMEDIATE")
            self.batch = []
            loop.call_soon(self.commit)
        self.conn.execute("INSERT INTO floor (data) VALUES (?)", (request.SerializeToString(),))
        done = loop.create_future()
        self.batch.append(done)
        await done
        return self.ANSWER

    def commit(self) -> None:
        batch, self.batch, self.turn = self.batch or [], None, []
        committed = asyncio.get_running_loop().run_in_executor(self.committer, self.conn.execute, "COMMIT")
        committed.add_done_callback(lambda _: self.committed(batch))

    def committed(self, batch: list[asyncio.Future[None]]) -> None:
        turn, self.turn = self.turn or [], None
        for future in batch + turn:
            if not future.done():
                future.set_result(None)


class AcceptWorkflow(workflow_service_pb2_grpc.WorkflowServiceServicer):
    """The load generator makes a workflow before it creates work orders: accepted, not kept."""

    async def CreateWorkflow(self, request: workflow_service_pb2.CreateWorkflowRequest,
                             context: grpc.aio.ServicerContext) -> workflow_service_pb2.CreateWorkflowResponse:
        return workflow_service_pb2.CreateWorkflowResponse(workflow=request.workflow)


def log(message: str, **fields: object) -> None:
    print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "info",
                      "logger": "baseline", "message": message, **fields}), file=sys.stderr, flush=True)


async def serve(host: str, port: int, reuse_port: bool, db: str = "") -> None:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", int(reuse_port)),
    ]
    server = grpc.aio.server(options=options)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    classifier_service_pb2_grpc.add_ClassifierServiceServicer_to_server(ConstantClassifier(), server)
    if db:
        work_order_service_pb2_grpc.add_WorkOrderServiceServicer_to_server(DurableInsert(db), server)
        workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(AcceptWorkflow(), server)
    reflection.enable_server_reflection([CLASSIFIER, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    for name in ("", CLASSIFIER):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log("listening", host=host, port=bound)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(5)
    log("stopped")


def serve_processes(args: argparse.Namespace) -> None:
    """N baseline processes sharing one port, as `runstatus serve --processes N` runs."""
    with socket.socket() as s:
        s.bind((args.host, 0))
        port = args.port or s.getsockname()[1]
    children = [subprocess.Popen([sys.executable, __file__, "--host", args.host, "--port", str(port), "--reuse-port"])
                for _ in range(args.processes)]
    log("listening", host=args.host, port=port, processes=args.processes)
    signal.signal(signal.SIGTERM, lambda *_: [c.terminate() for c in children])
    signal.signal(signal.SIGINT, lambda *_: [c.terminate() for c in children])
    for child in children:
        child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reuse-port", action="store_true", help="set grpc.so_reuseport, as runstatus --processes N does")
    parser.add_argument("--db", default="", help="answer CreateWorkOrder with a durable INSERT into this file")
    parser.add_argument("--processes", type=int, default=1, help="processes sharing the port (Health/Check only)")
    args = parser.parse_args()
    if args.processes > 1:
        serve_processes(args)
    else:
        asyncio.run(serve(args.host, args.port, args.reuse_port, args.db))


if __name__ == "__main__":
    main()
