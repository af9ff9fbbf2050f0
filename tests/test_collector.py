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
from typing import Any

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
METRICS_SERVICE = "runstatus-metrics-through-collector"
WORKER_SERVICE = "python-worker-through-collector"
IDS = ("traceId", "spanId", "parentSpanId")


def collector_binary() -> str:
    found = shutil.which("otelcol-runstatus") or str(ROOT / ".tools/bin/otelcol-runstatus")
    if not os.access(found, os.X_OK):
        pytest.fail("no otelcol-runstatus: `make tools` builds it (tools/otelcol, `make otelcol`)")
    return found


class Collector:
    """otelcol-runstatus on a free loopback port: OTLP/gRPC in, its file exporter's OTLP/JSON out
    (one ExportTraceServiceRequest or ExportMetricsServiceRequest a line)."""

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
                "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file"]},
                              "metrics": {"receivers": ["otlp"], "exporters": ["file"]}},
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
        for export in self.exports():
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


    def exports(self) -> list[dict[str, Any]]:
        """Each export the file exporter has written so far, as OTLP/JSON."""
        found = []
        for line in (self.output.read_text() if self.output.exists() else "").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written
                continue
        return found

    def instances(self, kind: str) -> dict[str, str]:
        """service.name → service.instance.id of the resources of `kind` (resourceSpans or
        resourceMetrics) received so far."""
        said = [resource_attributes(r) for export in self.exports() for r in export.get(kind, [])]
        return {str(one["service.name"]): str(one["service.instance.id"]) for one in said}

    def metrics(self, service: str) -> list[dict[str, Any]]:
        """Every metric of each export the collector received from `service`, in order: the
        OTLP/JSON of a Metric."""
        found = []
        for export in self.exports():
            for resource in export.get("resourceMetrics", []):
                if resource_attributes(resource).get("service.name") == service:
                    found += [m for scope in resource.get("scopeMetrics", []) for m in scope.get("metrics", [])]
        return found


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


def test_the_servers_metrics_arrive_through_the_collector_as_its_metrics_page_says(
        collector: Collector, tmp_path: pathlib.Path) -> None:
    """With OTEL_METRICS_EXPORTER=otlp, the registry behind --metrics-port goes over OTLP every
    interval and once more at the stop: the same counts, histograms and store gauges."""
    metrics_port = harness.free_port()
    env = {**otel_env(collector.port, METRICS_SERVICE), "OTEL_METRICS_EXPORTER": "otlp",
           "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    with serving(tmp_path / "runstatus.db", env, "--otel", "--metrics-port", str(metrics_port)) as server:
        rs = Client(server.address, retries=1)
        rs.project_id = f"metrics-{time.monotonic_ns()}"
        rs.create_project(rs.project_id, name="metrics through a collector")
        rs.create_workflow("measured", ["a"])
        for _ in range(3):
            rs.create_work_order("measured")
        rs.close()
        page = harness.scrape(metrics_port)
        created = re.search(r'^runstatus_rpcs_total\{code="OK",method="WorkOrderService.CreateWorkOrder"\} ([0-9.e+]+)$', page, re.M)
        assert created and float(created.group(1)) == 3.0, page

        def latest() -> dict[str, dict[str, Any]]:
            got = {m["name"]: m for m in collector.metrics(METRICS_SERVICE)}  # the last export of each
            assert "runstatus_rpcs" in got, sorted(got)
            points = got["runstatus_rpcs"]["sum"]["dataPoints"]
            assert any(point_labels(p) == {"method": "WorkOrderService.CreateWorkOrder", "code": "OK"} and point_value(p) == 3
                       for p in points), points
            return got

        got = arrived(latest, "the metrics of the three creates", timeout=30)
    rpcs = got["runstatus_rpcs"]["sum"]
    assert rpcs["isMonotonic"] and rpcs["aggregationTemporality"] == 2  # CUMULATIVE (OTLP/JSON writes enums as numbers)
    (latency,) = [p for p in got["runstatus_rpc_seconds"]["histogram"]["dataPoints"]
                  if point_labels(p) == {"method": "WorkOrderService.CreateWorkOrder"}]
    assert int(latency["count"]) == 3 and sum(int(n) for n in latency["bucketCounts"]) == 3
    assert len(latency["bucketCounts"]) == len(latency["explicitBounds"]) + 1
    # One resource for the process's spans and its metrics; another process, another instance
    # (each of --processes N a series of its own).
    spans = arrived(lambda: collector.instances("resourceSpans")[METRICS_SERVICE], "the server's spans")
    assert collector.instances("resourceMetrics")[METRICS_SERVICE] == spans
    by_status = {point_labels(p)["status"]: point_value(p) for p in got["runstatus_work_orders"]["gauge"]["dataPoints"]}
    assert by_status.get("pending") == 3  # a store gauge, read through the store as for the page


def test_the_last_figures_go_out_as_the_server_stops(collector: Collector, tmp_path: pathlib.Path) -> None:
    service = "runstatus-metrics-at-stop"
    env = {**otel_env(collector.port, service), "OTEL_METRICS_EXPORTER": "otlp",
           "OTEL_METRIC_EXPORT_INTERVAL": "600000"}  # ten minutes: only the stop's export comes in time
    with serving(tmp_path / "runstatus.db", env, "--otel") as server:
        rs = Client(server.address, retries=1)
        rs.create_workflow("measured", ["a"])
        rs.create_work_order("measured")
        rs.close()
        time.sleep(0.5)
        assert collector.metrics(service) == []
    # serving() stopped the server (SIGTERM): its last act sent the figures.

    def sent() -> None:
        (rpcs,) = [m for m in collector.metrics(service) if m["name"] == "runstatus_rpcs"]
        points = {point_labels(p)["method"]: point_value(p) for p in rpcs["sum"]["dataPoints"]}
        assert points.get("WorkOrderService.CreateWorkOrder") == 1, points

    arrived(sent, "the metrics sent at the stop", timeout=15)


def test_a_server_without_otel_metrics_exporter_sends_no_metrics(collector: Collector, traced: ServerProcess) -> None:
    rs = Client(traced.address, retries=1)
    list(rs.list_projects())
    rs.close()
    arrived(lambda: collector.received().of(SERVER_SERVICE) or None, "the server's spans", timeout=30)
    assert collector.metrics(SERVER_SERVICE) == []


def point_value(point: dict[str, Any]) -> float:
    return float(point["asDouble"] if "asDouble" in point else point["asInt"])  # OTLP/JSON writes an int64 as text


def resource_attributes(resource: dict[str, Any]) -> dict[str, str | None]:
    """The string attributes of a resourceSpans' or resourceMetrics' resource (OTLP/JSON)."""
    return {a["key"]: a["value"].get("stringValue") for a in resource["resource"].get("attributes", [])}


def point_labels(point: dict[str, Any]) -> dict[str, str]:
    return {a["key"]: a["value"]["stringValue"] for a in point.get("attributes", [])}


def test_each_server_process_is_an_instance_of_its_own(collector: Collector, traced: ServerProcess,
                                                        tmp_path: pathlib.Path) -> None:
    other = "runstatus-another-process"
    with serving(tmp_path / "runstatus.db", otel_env(collector.port, other), "--otel") as server:
        rs = Client(server.address, retries=1)
        list(rs.list_projects())
        rs.close()
    mine = Client(traced.address, retries=1)
    list(mine.list_projects())
    mine.close()

    def both() -> set[str]:
        found = collector.instances("resourceSpans")
        assert other in found and SERVER_SERVICE in found, sorted(found)
        return {found[other], found[SERVER_SERVICE]}

    assert len(arrived(both, "both servers' spans", timeout=30)) == 2
