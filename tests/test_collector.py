"""Traces (issue 32) through a real OpenTelemetry Collector: otelcol-runstatus, which `make tools`
builds with the collector's own builder (ocb) from tools/otelcol/builder-config.yaml and the
lock beside it. It receives OTLP/gRPC on a loopback port from the server started with --otel and
from a Python worker, and its file exporter writes what it received as OTLP/JSON, which the test
reads: the worker's run and step spans and the server's RPC and store spans arrive as one trace,
each beneath the span it was made in.

The other tracing tests (tests/test_tracing*.py) export to an OTLP receiver in the test process
(tests/otlp.py); this one shows that what runstatus exports passes through a real collector."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import harness
from harness import ServerProcess
from otlp import Receiver, arrived, attrs, otel_env, run_failing_referral, serving
from runstatus import Client

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVER_SERVICE = "runstatus-through-collector"
WORKER_SERVICE = "python-worker-through-collector"
IDS = ("traceId", "spanId", "parentSpanId")


def collector_binary() -> str:
    found = shutil.which("otelcol-runstatus") or str(ROOT / ".tools/bin/otelcol-runstatus")
    if not os.access(found, os.X_OK):
        pytest.fail("no otelcol-runstatus: `make tools` builds it (tools/otelcol, `make otelcol`)")
    return found


class Collector:
    """otelcol-runstatus on a free loopback port: OTLP/gRPC in, its file exporter's OTLP/JSON out
    (one ExportTraceServiceRequest a line)."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.port = harness.free_port()
        self.output = folder / "spans.json"
        self.log_path = folder / "collector.log"
        self.config = folder / "collector.yaml"
        # JSON is YAML: the collector's config, with its own telemetry off (no metrics port).
        self.config.write_text(json.dumps({
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{self.port}"}}}},
            "exporters": {"file": {"path": str(self.output), "flush_interval": "100ms"}},
            "service": {
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
                "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file"]}},
            },
        }, indent=2))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Collector:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([collector_binary(), "--config", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the collector exited ({self.proc.returncode}):\n{self.log_path.read_text()}")
            if "Everything is ready" in self.log_path.read_text():
                with socket.create_connection(("127.0.0.1", self.port), timeout=5):
                    return self
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the collector did not start in {timeout} s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def received(self) -> Receiver:
        """Everything the file exporter has written so far, as the in-process receiver would hold
        it (tests/otlp.py): OTLP/JSON's hex ids back to the protobuf's bytes."""
        spans = Receiver()
        text = self.output.read_text() if self.output.exists() else ""
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                export = json.loads(line)
            except json.JSONDecodeError:  # a line being written
                continue
            for resource in export.get("resourceSpans", []):
                for scope in resource.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        for key in IDS:
                            if span.get(key):
                                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
            request = json_format.ParseDict(export, trace_service_pb2.ExportTraceServiceRequest(),
                                            ignore_unknown_fields=True)
            spans.Export(request, None)  # type: ignore[arg-type]
        return spans


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    running = Collector(tmp_path_factory.mktemp("collector")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def traced(collector: Collector, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server with --otel, exporting to the collector (the OTEL_* environment, for it alone)."""
    with serving(tmp_path_factory.mktemp("through-collector") / "runstatus.db",
                 otel_env(collector.port, SERVER_SERVICE), "--otel") as server:
        yield server


def test_a_worker_run_and_the_servers_spans_arrive_through_the_collector_as_one_trace(
        collector: Collector, traced: ServerProcess) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": WORKER_SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"127.0.0.1:{collector.port}", insecure=True)))
    rs = Client(traced.address, retries=1)
    rs.project_id = f"collector-{time.monotonic_ns()}"
    rs.create_project(rs.project_id, name="through a collector")
    order = run_failing_referral(rs, provider, "collector-worker")
    run_id = order.latest_run_id
    wanted = {"StartRun": 1, "StartStep": 2, "CompleteStep": 2, "CompleteRun": 1}

    def one_trace() -> tuple[Span, dict[str, Span], list[Span], list[Span]]:
        received = collector.received()
        mine = [s for s in received.of(WORKER_SERVICE) if attrs(s).get("runstatus.run_id") == run_id]
        (run_span,) = [s for s in mine if s.name == "run referral"]
        steps = {s.name: s for s in mine if s.name.startswith("step ")}
        assert set(steps) == {"step fetch", "step save"}
        server = [s for s in received.of(SERVER_SERVICE) if s.trace_id == run_span.trace_id]
        calls = [s for s in server if s.kind == Span.SPAN_KIND_SERVER]
        methods = [attrs(s)["rpc.method"] for s in calls]
        assert all(methods.count(m) == n for m, n in wanted.items()), methods
        return run_span, steps, calls, server

    run_span, steps, calls, server = arrived(one_trace, timeout=30)

    # The worker's spans: the run, and a step span beneath it for each step, the failed one with
    # its exception and the server's classification.
    assert all(s.trace_id == run_span.trace_id and s.parent_span_id == run_span.span_id for s in steps.values())
    assert attrs(run_span)["runstatus.run_status"] == "RUN_STATUS_FAILED"
    assert run_span.status.code == Status.STATUS_CODE_ERROR
    failed = steps["step save"]
    assert failed.status.code == Status.STATUS_CODE_ERROR and "KeyError" in failed.status.message
    assert [e.name for e in failed.events] == ["exception"]
    assert attrs(failed)["runstatus.classification.status"] == "RUN_STATUS_FAILED"

    # The server's RPC spans: in the worker's trace, each beneath the span its call was made in.
    by_method: dict[str, list[Span]] = {}
    for span in calls:
        said = attrs(span)
        by_method.setdefault(said["rpc.method"], []).append(span)
        assert span.name == f"runstatus.v1.WorkerService/{said['rpc.method']}"
        assert said["rpc.system"] == "grpc" and said["rpc.grpc.status_code"] == 0
        assert said["runstatus.run_id"] == run_id
    assert [s.parent_span_id for s in by_method["StartRun"] + by_method["CompleteRun"]] == [run_span.span_id] * 2
    for name in ("step fetch", "step save"):
        beneath = sorted(attrs(s)["rpc.method"] for s in calls if s.parent_span_id == steps[name].span_id)
        assert beneath == ["CompleteStep", "StartStep"], name

    # Beneath the StartRun span, the store's unit of work on this backend: worker to database.
    (start_run,) = by_method["StartRun"]
    writes = [s for s in server if s.parent_span_id == start_run.span_id and s.name.startswith("store.write ")]
    assert writes, [s.name for s in server]
    assert attrs(writes[0])["db.system.name"] == ("postgresql" if harness.ON_POSTGRES else "sqlite")

    # The run remembers that trace.
    assert rs.get_run(run_id).proto.trace_id == run_span.trace_id.hex()
    rs.close()
    provider.shutdown()


def test_the_collector_is_built_from_its_manifest_and_lock() -> None:
    """tools/otelcol/go.mod (ocb's output, the collector's lock) requires each module the manifest
    names at the manifest's version, with no replace escaping the lock, and ocb (tools/go.mod) is of
    the collector's release, as its manifest's modules are."""
    manifest = (ROOT / "tools/otelcol/builder-config.yaml").read_text()
    go_mod = (ROOT / "tools/otelcol/go.mod").read_text()
    required = dict(re.findall(r"^\s*(?:require\s+)?([\w./-]+\.[\w./-]+)\s+(v[^\s]+)", go_mod, re.M))
    named = re.findall(r"gomod:\s*(\S+)\s+(v\S+)", manifest)
    assert named and all(required.get(module) == version for module, version in named), (named, required)
    assert "replace" not in go_mod and (ROOT / "tools/otelcol/go.sum").stat().st_size > 0
    components = (ROOT / "tools/otelcol/components.go").read_text()
    assert all(f'"{module}"' in components for module, _ in named if "/confmap/" not in module)
    tools = dict(re.findall(r"^\s*([\w./-]+\.[\w./-]+)\s+(v[^\s]+)", (ROOT / "tools/go.mod").read_text(), re.M))
    assert tools["go.opentelemetry.io/collector/cmd/builder"] == required["go.opentelemetry.io/collector/otelcol"]
