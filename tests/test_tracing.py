"""Traces (issue 32), against a real OTLP endpoint: an OTLP/gRPC receiver made here from the
official definitions (opentelemetry-proto's TraceService), on a real port, takes what the
server started with --otel exports, and what a Python worker in this process exports (the
client's `otel` extra: its calls carry traceparent, its Worker makes a span per run and step).

A worker's run and the server's spans are one trace with the right parents (RPC spans beneath
the worker's run and step spans, store spans beneath the RPC's); a failed step's span has the
error and the server's classification; the run's stored trace id is that trace's; a log line
written inside a span (the sweeper's) names it; with tracing off nothing is exported."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import harness
from harness import ServerProcess
from otlp import Receiver, arrived, attrs, otel_env, receiver, run_failing_referral, serving, value  # noqa: F401 - receiver is a fixture
from runstatus import Client
from runstatus.v1.status_pb2 import RunStatus
from runstatus.worker import Worker

SERVER_SERVICE = "runstatus-under-test"
WORKER_SERVICE = "python-worker-under-test"


WEB_PORT = harness.free_port()


@pytest.fixture(scope="module")
def traced(receiver: tuple[Receiver, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server with --otel, its spans to the receiver; short leases, quick sweeps; the
    history page on WEB_PORT, linking runs to their traces."""
    _, port = receiver
    with serving(tmp_path_factory.mktemp("traced") / "runstatus.db", otel_env(port, SERVER_SERVICE),
                 "--otel", "--lease-seconds", "1", "--sweep-seconds", "0.2", "--web-port", str(WEB_PORT),
                 "--trace-url-template", "http://traces.example/trace/{trace_id}") as server:
        yield server


def worker_provider(port: int) -> TracerProvider:
    """The worker's own OpenTelemetry SDK, exporting to the same receiver as the server."""
    provider = TracerProvider(resource=Resource.create({"service.name": WORKER_SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)))
    return provider


def new_client(server: ServerProcess) -> Client:
    rs = Client(server.address, retries=1)
    rs.project_id = f"trace-{time.monotonic_ns()}"
    rs.create_project(rs.project_id, name="tracing tests")
    return rs


def server_spans(collector: Receiver, trace_id: bytes, service: str = SERVER_SERVICE) -> list[Span]:
    return [s for s in collector.of(service) if s.trace_id == trace_id]


def test_a_worker_run_and_the_servers_spans_are_one_trace(traced: ServerProcess,
                                                         receiver: tuple[Receiver, int]) -> None:
    collector, port = receiver
    provider = worker_provider(port)
    rs = new_client(traced)
    order = run_failing_referral(rs, provider, "traced-worker")
    run_id = order.latest_run_id

    # The worker's spans: the run, and a step span beneath it for each step.
    mine = [s for s in collector.of(WORKER_SERVICE) if attrs(s).get("runstatus.run_id") == run_id]
    (run_span,) = [s for s in mine if s.name == "run referral"]
    steps = {s.name: s for s in mine if s.name.startswith("step ")}
    assert set(steps) == {"step fetch", "step save"}
    assert all(s.trace_id == run_span.trace_id and s.parent_span_id == run_span.span_id for s in steps.values())
    assert attrs(run_span)["runstatus.run_status"] == "RUN_STATUS_FAILED"
    assert run_span.status.code == Status.STATUS_CODE_ERROR
    assert steps["step fetch"].status.code != Status.STATUS_CODE_ERROR

    # The failed step's span: its exception, and how the server classified it.
    failed = steps["step save"]
    assert failed.status.code == Status.STATUS_CODE_ERROR and "KeyError" in failed.status.message
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert value(exception.attributes, "exception.type") == "KeyError"
    said = attrs(failed)
    assert said["runstatus.classification.status"] == "RUN_STATUS_FAILED"
    assert said["runstatus.classification.rule"]  # which rule matched, e.g. an alias of KeyError
    assert said["runstatus.classification.error_type"].startswith("ERROR_TYPE_")
    assert said["runstatus.step_run_id"]

    # The server's spans of those calls: in the same trace, each beneath the span it was made in.
    trace_id = run_span.trace_id
    wanted = {"StartRun": 1, "StartStep": 2, "CompleteStep": 2, "CompleteRun": 1}

    def rpcs() -> list[Span]:
        found = [s for s in server_spans(collector, trace_id) if s.kind == Span.SPAN_KIND_SERVER]
        methods = [attrs(s)["rpc.method"] for s in found]
        assert all(methods.count(m) == n for m, n in wanted.items()), methods
        return found

    calls = arrived(rpcs, "the server's spans of the run arrived")
    by_method: dict[str, list[Span]] = {}
    for span in calls:
        by_method.setdefault(attrs(span)["rpc.method"], []).append(span)
    for span in calls:
        said = attrs(span)
        assert span.name == f"runstatus.v1.WorkerService/{said['rpc.method']}"
        assert said["rpc.system"] == "grpc" and said["rpc.service"] == "runstatus.v1.WorkerService"
        assert said["rpc.grpc.status_code"] == 0 and said["runstatus.run_id"] == run_id
    assert [s.parent_span_id for s in by_method["StartRun"] + by_method["CompleteRun"]] == [run_span.span_id] * 2
    for name in ("step fetch", "step save"):
        beneath = sorted(attrs(s)["rpc.method"] for s in calls if s.parent_span_id == steps[name].span_id)
        assert beneath == ["CompleteStep", "StartStep"], name
    ended = attrs(by_method["CompleteRun"][0])
    assert ended["runstatus.run_status"] == "RUN_STATUS_FAILED"
    assert ended["runstatus.work_order_id"] == order.id and ended["runstatus.project_id"] == rs.project_id

    # Beneath each RPC span, the store's unit of work, on this backend.
    backend = "postgresql" if harness.ON_POSTGRES else "sqlite"
    start_run = by_method["StartRun"][0]
    store = [s for s in server_spans(collector, trace_id) if s.parent_span_id == start_run.span_id]
    writes = [s for s in store if s.name.startswith("store.write ")]
    assert writes, [s.name for s in store]
    said = attrs(writes[0])
    assert writes[0].kind == Span.SPAN_KIND_CLIENT
    assert said["db.system.name"] == backend and said["runstatus.store.unit"] == "write"
    assert said["runstatus.store.statements"] > 0 and said["runstatus.store.attempts"] >= 1
    assert said["runstatus.store.commit_wait_ms"] >= 0

    # The run remembers the trace of the StartRun that began it; the history page links it.
    assert rs.get_run(run_id).proto.trace_id == trace_id.hex()
    page = f"http://127.0.0.1:{WEB_PORT}/work-orders/{order.id}?{urlencode({'project': rs.project_id})}"
    with urllib.request.urlopen(page, timeout=10) as answer:
        body = answer.read().decode()
    assert f'href="http://traces.example/trace/{trace_id.hex()}"' in body
    rs.close()
    provider.shutdown()


def test_a_claim_traces_its_run_and_a_sweep_is_a_span_its_log_lines_name(
        traced: ServerProcess, receiver: tuple[Receiver, int]) -> None:
    collector, port = receiver
    provider = worker_provider(port)
    rs = new_client(traced)
    rs.create_workflow("w", ["a"])
    order = rs.create_work_order("w")
    with provider.get_tracer("test").start_as_current_span("claim, then walk away") as claiming:
        (claimed,) = rs.claim_runs("leaves-it").runs
    trace_id = format(claiming.get_span_context().trace_id, "032x")
    # A run no StartRun began remembers the trace of the ClaimRuns that claimed it.
    assert rs.get_run(order.latest_run_id).proto.trace_id == trace_id

    # Its lease expires (1 s): the sweeper's pass that finds it LOST is a span, and its log line names it.
    def lost_line() -> dict[str, Any]:
        (line, *_) = [e for e in traced.log_entries() if e.get("message") == "runs lost: their leases expired"]
        return line

    line = arrived(lost_line, "the sweeper logged the lost run")
    assert len(line["trace_id"]) == 32 and len(line["span_id"]) == 16

    def sweep() -> Span:
        (span,) = [s for s in collector.of(SERVER_SERVICE)
                   if s.trace_id.hex() == line["trace_id"] and s.span_id.hex() == line["span_id"]]
        return span

    span = arrived(sweep, "the sweep's span arrived")
    assert span.name == "runstatus.sweep" and attrs(span)["runstatus.runs_lost"] >= 1
    beneath = [s for s in server_spans(collector, span.trace_id) if s.parent_span_id == span.span_id]
    assert [s.name for s in beneath] == ["store.write sweep"]
    assert rs.get_run(claimed.run.id).status == RunStatus.RUN_STATUS_LOST
    rs.close()
    provider.shutdown()


def test_with_tracing_off_nothing_is_exported(receiver: tuple[Receiver, int], tmp_path: pathlib.Path) -> None:
    collector, port = receiver
    provider = worker_provider(port)
    with serving(tmp_path / "runstatus.db", otel_env(port, "runstatus-off"),
                 "--lease-seconds", "1", "--sweep-seconds", "0.2") as server:
        rs = new_client(server)
        rs.create_workflow("w", ["a"])
        order = rs.create_work_order("w")
        worker = Worker(rs, worker_id="untraced", tracer_provider=provider)
        worker.step("a")(lambda state: state)
        (outcome,) = worker.run_until_idle()
        provider.force_flush()
        # The worker's spans went out, and its calls carried their traceparent...
        assert any(attrs(s).get("runstatus.run_id") == outcome.run_id for s in collector.of(WORKER_SERVICE))
        # ...which a server without --otel neither follows nor remembers.
        assert rs.get_run(order.latest_run_id).proto.trace_id == ""
        rs.close()
        time.sleep(0.5)  # five times the batch delay a traced server would have
        entries = server.log_entries()
    assert collector.of("runstatus-off") == []
    assert not [e for e in entries if "trace_id" in e]
    provider.shutdown()


def test_with_tracing_off_the_server_imports_nothing_of_opentelemetry() -> None:
    """Off is free: the server's modules (the web UI's too) load no OpenTelemetry module."""
    code = ("import sys, runstatus_server.cli, runstatus_server.server, runstatus_server.web.app, runstatus.worker; "
            "print([m for m in sys.modules if m.startswith('opentelemetry')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_a_trace_url_template_needs_its_trace_id(tmp_path: pathlib.Path) -> None:
    done = subprocess.run([sys.executable, "-m", "runstatus_server", "serve", "--db", str(tmp_path / "x.db"),
                           "--trace-url-template", "http://traces.example/trace/"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "{trace_id}" in done.stderr
