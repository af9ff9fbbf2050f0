"""A real OTLP endpoint for the tracing tests: an OTLP/gRPC trace receiver made from the
official definitions (opentelemetry-proto's TraceService) on a real loopback port, and the
OTEL_* environment that points a process (the server, a Go, TypeScript or Java worker) at it;
a server started with that environment (`serving`), and `arrived` for what comes later."""

from __future__ import annotations

import contextlib
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from harness import ServerProcess
from runstatus import Client
from runstatus.v1.status_pb2 import RunStatus
from runstatus.worker import Worker

T = TypeVar("T")


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: every span exported to it, with its service's name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        self.exports = 0
        self._lock = threading.Lock()

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,  # noqa: N802
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.exports += 1
            for resource_spans in request.resource_spans:
                service = value(resource_spans.resource.attributes, "service.name")
                for scope in resource_spans.scope_spans:
                    self.spans += [(service, span) for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()

    def of(self, service: str) -> list[Span]:
        with self._lock:
            return [span for name, span in self.spans if name == service]


def value(attributes: Any, key: str) -> Any:
    for kv in attributes:
        if kv.key == key:
            which = kv.value.WhichOneof("value")
            return getattr(kv.value, which) if which else None
    return None


def attrs(span: Span) -> dict[str, Any]:
    return {kv.key: value(span.attributes, kv.key) for kv in span.attributes}


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    collector = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield collector, port
    server.stop(0)


def otel_env(port: int, service: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_SERVICE_NAME": service,
            "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_TRACES_SAMPLER": "parentbased_always_on"}


@contextlib.contextmanager
def serving(db: pathlib.Path, env: dict[str, str], *args: str) -> Iterator[ServerProcess]:
    """A server started with `env` added to its environment (for it alone)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, setting in env.items():
            patch.setenv(key, setting)
        server = ServerProcess(db, *args).start()
    try:
        yield server
    finally:
        server.stop()


def arrived(check: Callable[[], T], what: str = "", timeout: float = 20.0) -> T:
    """check()'s first answer that raised no AssertionError (nor ValueError), asked every 50 ms:
    spans arrive when their exporter's batch goes. (harness.eventually waits for a true value;
    this, for checks that assert.) `what` is what it waits for, for the reader."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, ValueError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def run_failing_referral(rs: Client, provider: Any, worker_id: str) -> Any:
    """A Python Worker (its spans made by `provider`) runs workflow "referral": step fetch, then
    step save, which raises KeyError, so the trace holds a failed step. Its spans are flushed;
    the work order it ran."""
    rs.create_workflow("referral", ["fetch", "save"], [("fetch", "save", "ON_SUCCESS")])
    order = rs.create_work_order("referral", {"patient_id": 7})
    worker = Worker(rs, worker_id=worker_id, tracer_provider=provider)

    @worker.step("fetch")
    def fetch(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "patient": "Ada"}

    @worker.step("save")
    def save(state: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("ward")

    (outcome,) = worker.run_until_idle()
    assert outcome.status == RunStatus.RUN_STATUS_FAILED
    provider.force_flush()
    return order
