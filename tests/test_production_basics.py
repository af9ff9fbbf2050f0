"""Health checking, reflection (grpcurl with no proto files), size limits, the storage settings."""

from __future__ import annotations

import json
import pathlib
import shutil
import sqlite3
import subprocess

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Client, ServerProcess, fields, rpc_error
from runstatus.v1 import work_order_service_pb2 as wo_pb

SERVICES = [
    "runstatus.v1.ClassifierService",
    "runstatus.v1.ProjectService",
    "runstatus.v1.WorkOrderService",
    "runstatus.v1.WorkerService",
    "runstatus.v1.WorkflowService",
]


def test_health(client: Client) -> None:
    stub = health_pb2_grpc.HealthStub(client.channel)
    for service in ["", *SERVICES]:
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def grpcurl() -> str:
    path = shutil.which("grpcurl")
    if path is None:
        pytest.fail("grpcurl is not on PATH: `make test` installs it into .tools/bin")
    return path


def test_grpcurl_lists_the_services_through_reflection(server: ServerProcess) -> None:
    out = subprocess.run([grpcurl(), "-plaintext", server.address, "list"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split()
    for service in [*SERVICES, "grpc.health.v1.Health"]:
        assert service in listed


def test_grpcurl_round_trip_without_proto_files(server: ServerProcess) -> None:
    request = json.dumps({"error": {"name": "KeyError", "language": "python", "source": "ERROR_SOURCE_JOB"}})
    out = subprocess.run(
        [grpcurl(), "-plaintext", "-d", request, server.address, "runstatus.v1.ClassifierService/Classify"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)["classification"]
    assert answer == {"status": "RUN_STATUS_FAILED", "errorType": "ERROR_TYPE_RANGE_ERROR",
                      "rule": "alias:python:KeyError"}


def test_input_size_is_limited(client: Client) -> None:
    wf = client.workflow(["a"])
    big = Struct()
    big.update({"blob": "x" * (1024 * 1024 + 10)})
    e = rpc_error(client.work_orders.CreateWorkOrder, wo_pb.CreateWorkOrderRequest(
        project_id=client.project_id, workflow_id=wf.id, input=big))
    assert fields(e) == ["input"]
    huge = Struct()
    huge.update({"blob": "x" * (5 * 1024 * 1024)})
    e = rpc_error(client.work_orders.CreateWorkOrder, wo_pb.CreateWorkOrderRequest(
        project_id=client.project_id, workflow_id=wf.id, input=huge))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.sqlite_only("SQLite's journal mode and user_version")
def test_database_is_wal_and_schema_is_current(server: ServerProcess) -> None:
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_logs_are_structured(server: ServerProcess) -> None:
    entries = server.log_entries()
    listening = [e for e in entries if e.get("message") == "listening"]
    assert listening and listening[0]["port"] == server.port
    assert all("level" in e and "time" in e for e in entries)


def test_serves_on_loopback_by_default(tmp: pathlib.Path) -> None:
    server = ServerProcess(tmp / "x.db").start()
    try:
        listening = [e for e in server.log_entries() if e.get("message") == "listening"]
        assert listening[0]["host"] == "127.0.0.1"
    finally:
        server.stop()
