"""Traces from the Java client (issue 32), against a real OTLP endpoint: the server started with
--otel and the Java example worker (clients/java/contract's TracedWorker, run by Maven with the
OTEL_* variables pointing at tests/otlp.py's receiver) export to the same receiver.

The Java worker's run and step spans, its calls' client spans (OpenTelemetry's gRPC
instrumentation) and the server's RPC spans are one trace: each server span's parent is the
Java client span of that call, whose parent is the run's or the step's span; the failed step's
span has the exception and the server's classification; the run's stored trace id is that
trace's.

Maven builds a copy of clients/java and proto/ in a temporary folder, so the SQLite and
PostgreSQL runs (which `make test` runs at once) never share a target/ folder."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from harness import ServerProcess
from otlp import Receiver, arrived, attrs, otel_env, receiver, serving, value  # noqa: F401 - receiver is a fixture
from runstatus import Client
from runstatus.v1.status_pb2 import RunStatus

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVER_SERVICE = "runstatus-under-java"
WORKER_SERVICE = "java-worker-under-test"
# The example's line per run: "run RUN_ID CHIP STATUS [steps] trace TRACE_ID".
RUN_LINE = re.compile(r"^run (\S+) \S+ (RUN_STATUS_\w+) \[(.*)\] trace (\S+)$")

# Maven builds the client and runs the example: ~40 s on a quiet machine, far more on a busy one.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def traced_run(receiver: tuple[Receiver, int],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, re.Match[str]]]:
    """The server with --otel and the Java traced worker, both exporting to the receiver; the
    worker's line about the run it executed."""
    _, port = receiver
    tmp = tmp_path_factory.mktemp("java-traces")
    with serving(tmp / "runstatus.db", otel_env(port, SERVER_SERVICE), "--otel") as server:
        source = tmp / "checkout"
        shutil.copytree(ROOT / "clients/java", source / "clients/java", ignore=shutil.ignore_patterns("target"))
        shutil.copytree(ROOT / "proto", source / "proto")
        # Without it Maven 3.8's Jansi writes ESC[0m around the output (clients/java/.mvn/jvm.config).
        env = {**os.environ, "MAVEN_OPTS": "-Djansi.noreset=true", **otel_env(port, WORKER_SERVICE)}
        out = subprocess.run(
            ["mvn", "-q", "-B", "compile", "exec:java", "-Dexec.mainClass=dev.runstatus.example.TracedWorker",
             f"-Dexec.args={server.address}"],
            cwd=source / "clients/java", env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stdout + out.stderr
        (line,) = [m for m in map(RUN_LINE.match, out.stdout.splitlines()) if m]
        yield server, line


def test_the_java_workers_spans_and_the_servers_are_one_trace(
        traced_run: tuple[ServerProcess, re.Match[str]], receiver: tuple[Receiver, int]) -> None:
    collector, _ = receiver
    server, line = traced_run
    run_id, status, executed, stored = line.groups()
    assert status == "RUN_STATUS_FAILED" and executed == "fetch, save"

    # The worker's spans (exported before it exited): the run, and a step span beneath it per step.
    mine = [s for s in collector.of(WORKER_SERVICE) if attrs(s).get("runstatus.run_id") == run_id]
    (run_span,) = [s for s in mine if s.name == "run referral"]
    steps = {s.name: s for s in mine if s.name.startswith("step ")}
    assert set(steps) == {"step fetch", "step save"}
    trace_id = run_span.trace_id
    assert all(s.trace_id == trace_id and s.parent_span_id == run_span.span_id for s in steps.values())
    said = attrs(run_span)
    assert said["runstatus.run_status"] == "RUN_STATUS_FAILED" and said["runstatus.work_order_id"]
    assert said["runstatus.worker_id"] == "java-traced"
    assert run_span.status.code == Status.STATUS_CODE_ERROR
    assert steps["step fetch"].status.code != Status.STATUS_CODE_ERROR
    assert all(attrs(s)["runstatus.step_run_id"] for s in steps.values())

    # The failed step's span: its exception, and how the server classified it.
    failed = steps["step save"]
    assert failed.status.code == Status.STATUS_CODE_ERROR
    assert failed.status.message.startswith("NoSuchElementException: no ward for Ada")
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert value(exception.attributes, "exception.type") == "java.util.NoSuchElementException"
    said = attrs(failed)
    assert said["runstatus.classification.status"] == "RUN_STATUS_FAILED"
    assert said["runstatus.classification.error_type"] == "ERROR_TYPE_RANGE_ERROR"
    assert said["runstatus.classification.rule"]  # which rule matched: the alias of NoSuchElementException
    assert said["runstatus.classification.aborts_run"] is False

    # The Java client's span of each call, beneath the span it was made in.
    calls = {s.span_id: s for s in collector.of(WORKER_SERVICE)
             if s.trace_id == trace_id and s.kind == Span.SPAN_KIND_CLIENT}
    beneath = {parent.name: sorted(s.name.rsplit("/", 1)[1] for s in calls.values()
                                   if s.parent_span_id == parent.span_id)
               for parent in [run_span, *steps.values()]}
    assert beneath == {"run referral": ["CompleteRun", "StartRun"],
                       "step fetch": ["CompleteStep", "StartStep"], "step save": ["CompleteStep", "StartStep"]}

    # The server's span of each call: in the same trace, a child of the Java client's span of it.
    def rpcs() -> list[Span]:
        found = [s for s in collector.of(SERVER_SERVICE) if s.trace_id == trace_id and s.kind == Span.SPAN_KIND_SERVER]
        assert len(found) == len(calls), [s.name for s in found]
        return found

    for span in arrived(rpcs):
        parent = calls[span.parent_span_id]
        assert span.name == parent.name and span.name.startswith("runstatus.v1.WorkerService/")
        assert attrs(span)["runstatus.run_id"] == run_id and attrs(span)["rpc.grpc.status_code"] == 0

    # The run remembers the trace of the StartRun that began it: the worker's GetRun said so, and so does ours.
    assert stored == trace_id.hex()
    rs = Client(server.address, retries=1)
    try:
        run = rs.get_run(run_id)
        assert run.status == RunStatus.RUN_STATUS_FAILED and run.proto.trace_id == trace_id.hex()
    finally:
        rs.close()
