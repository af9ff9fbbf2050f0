"""Traces from the Go client (issue 32), against a real OTLP endpoint: clients/go's
cmd/traced-worker, pointed at the receiver of tests/otlp.py by the standard OTEL_* variables,
runs a work order (a step that succeeds, then one that fails) on a server started with --otel
that exports to the same receiver.

The Go worker's run and step spans, its calls' CLIENT spans (OpenTelemetry's otelgrpc) and the
server's RPC spans are one trace: each server span beneath the CLIENT span of its call, that
beneath the step's span (or the run's) it was made in. The failed step's span has the error and
the server's classification; the run's stored trace id is that trace's. Without the OTEL_*
variables the Go worker exports nothing and its calls carry no traceparent."""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from harness import ServerProcess
from otlp import Receiver, arrived, attrs, otel_env, receiver, serving, value  # noqa: F401 - receiver is a fixture
from runstatus import Client

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVER_SERVICE = "runstatus-under-test-for-go"
GO_SERVICE = "go-worker-under-test"
SERVICE = "runstatus.v1.WorkerService"


@pytest.fixture(scope="module")
def traced(receiver: tuple[Receiver, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _, port = receiver
    with serving(tmp_path_factory.mktemp("traced-go") / "runstatus.db", otel_env(port, SERVER_SERVICE),
                 "--otel") as server:
        yield server


@pytest.fixture(scope="module")
def traced_worker(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """cmd/traced-worker, built from go.mod and go.sum as they are."""
    binary = tmp_path_factory.mktemp("traced-worker") / "traced-worker"
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOWORK": "off"}
    built = subprocess.run(["go", "build", "-o", str(binary), "./cmd/traced-worker"], cwd=ROOT / "clients/go",
                           env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    return binary


def run_worker(binary: pathlib.Path, address: str, env: dict[str, str]) -> tuple[str, str, str]:
    """The traced worker's one run: its id, status and the trace id the server stored for it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([str(binary), address], env={**clean, **env}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    (line,) = out.stdout.splitlines()
    run_id, _chip, status, said, trace_id = (line.split() + [""])[:5]
    assert said == "trace:", line
    return run_id, status, trace_id


def method(span: Span) -> str:
    return span.name.removeprefix(f"{SERVICE}/")


def test_the_go_workers_run_and_the_servers_spans_are_one_trace(
        traced: ServerProcess, receiver: tuple[Receiver, int], traced_worker: pathlib.Path) -> None:
    collector, port = receiver
    run_id, status, stored_trace = run_worker(traced_worker, traced.address, otel_env(port, GO_SERVICE))
    assert status == "RUN_STATUS_FAILED"

    # The worker's spans (flushed before it exited): the run, a span per step beneath it.
    go_spans = collector.of(GO_SERVICE)
    (run_span,) = [s for s in go_spans if s.name == "run go-traced" and attrs(s)["runstatus.run_id"] == run_id]
    trace_id = run_span.trace_id
    said = attrs(run_span)
    assert said["runstatus.run_status"] == "RUN_STATUS_FAILED" and said["runstatus.worker_id"] == "go-traced-worker"
    assert said["runstatus.work_order_id"] and said["runstatus.workflow_id"] == "go-traced"
    assert run_span.status.code == Status.STATUS_CODE_ERROR and run_span.parent_span_id == b""
    steps = {s.name: s for s in go_spans if s.trace_id == trace_id and s.name.startswith("step ")}
    assert set(steps) == {"step fetch", "step save"}
    assert all(s.parent_span_id == run_span.span_id for s in steps.values())
    assert steps["step fetch"].status.code != Status.STATUS_CODE_ERROR

    # The failed step: its error as reported, and how the server classified it.
    failed = steps["step save"]
    assert failed.status.code == Status.STATUS_CODE_ERROR
    assert failed.status.message == "TypeError: ward is not a string"
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert value(exception.attributes, "exception.type") == "TypeError"
    said = attrs(failed)
    assert said["runstatus.classification.status"] == "RUN_STATUS_FAILED"
    assert said["runstatus.classification.error_type"] == "ERROR_TYPE_TYPE_ERROR"
    assert said["runstatus.classification.rule"] and said["runstatus.classification.aborts_run"] is False
    assert said["runstatus.step_run_id"] and said["runstatus.run_id"] == run_id

    # Each call the run made is a CLIENT span (otelgrpc) beneath the span it was made in.
    clients = {s.span_id: s for s in go_spans if s.trace_id == trace_id and s.kind == Span.SPAN_KIND_CLIENT}
    made_in = {name: sorted(method(c) for c in clients.values() if c.parent_span_id == span.span_id)
               for name, span in [("run", run_span), *steps.items()]}
    assert made_in["run"] == ["CompleteRun", "StartRun"]
    # Heartbeats, if one fell due, are made in the step running then.
    assert [m for m in made_in["step fetch"] if m != "Heartbeat"] == ["CompleteStep", "StartStep"]
    assert [m for m in made_in["step save"] if m != "Heartbeat"] == ["CompleteStep", "StartStep"]

    # The server's span of each call is in the same trace, beneath the call's CLIENT span.
    def rpcs() -> list[Span]:
        found = [s for s in collector.of(SERVER_SERVICE) if s.trace_id == trace_id and s.kind == Span.SPAN_KIND_SERVER]
        assert len(found) == len(clients), sorted(method(s) for s in found)
        return found

    for span in arrived(rpcs):
        caller = clients[span.parent_span_id]
        assert caller.name == span.name and attrs(span)["rpc.method"] == method(caller)
        assert attrs(span)["runstatus.run_id"] == run_id and attrs(span)["rpc.grpc.status_code"] == 0

    # The claim came before the run: a trace of its own, the server's span beneath the Go CLIENT span.
    claims = [s for s in go_spans if s.name == f"{SERVICE}/ClaimRuns" and s.kind == Span.SPAN_KIND_CLIENT]
    assert claims and all(c.parent_span_id == b"" for c in claims)

    def claimed() -> None:
        for claim in claims:
            assert [s.name for s in collector.of(SERVER_SERVICE)
                    if s.trace_id == claim.trace_id and s.parent_span_id == claim.span_id] == [claim.name]

    arrived(claimed)

    # The run remembers the trace of the StartRun that began it: the Go worker's.
    assert stored_trace == trace_id.hex()
    rs = Client(traced.address)
    assert rs.get_run(run_id).proto.trace_id == trace_id.hex()
    rs.close()


def test_without_otel_variables_the_go_worker_sends_no_trace_context(
        traced: ServerProcess, receiver: tuple[Receiver, int], traced_worker: pathlib.Path) -> None:
    collector, _ = receiver
    run_id, status, stored_trace = run_worker(traced_worker, traced.address, {})
    assert status == "RUN_STATUS_FAILED"
    # The server traced the run on its own: its StartRun span is a root, no caller's child.
    def started() -> Span:
        (span,) = [s for s in collector.of(SERVER_SERVICE)
                   if s.name == f"{SERVICE}/StartRun" and attrs(s).get("runstatus.run_id") == run_id]
        return span

    start = arrived(started)
    assert start.parent_span_id == b"" and stored_trace == start.trace_id.hex()
    assert not [s for s in collector.spans if s[1].trace_id == start.trace_id and s[0] != SERVER_SERVICE]
    assert collector.of("runstatus-go-worker") == []
