"""Traces of the TypeScript client (issue 32, item 3), against a real OTLP endpoint: a server
started with --otel and clients/ts/examples/traced-worker.ts (OpenTelemetry's Node SDK and
OTLP/gRPC exporter, as the OTEL_* variables say) export to tests/otlp.py's receiver on a real
port. The TS Worker's run and step spans and the server's RPC spans are one trace: each RPC
span's parent is the TS span its call was made in (the client's interceptor sends the active
span's traceparent), the failed step's span has its error and the server's classification,
and the run's stored trace id is that trace's."""

from __future__ import annotations

import os
import pathlib
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
TS = ROOT / "clients" / "ts"
SERVER_SERVICE = "runstatus-under-test"
WORKER_SERVICE = "ts-worker-under-test"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (TS / "node_modules" / ".bin" / "tsx").exists(),
    reason="needs Node.js and the TypeScript client's npm packages (make tools)",
)


@pytest.fixture(scope="module")
def traced(receiver: tuple[Receiver, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The server with --otel, its spans to the receiver."""
    _, port = receiver
    with serving(tmp_path_factory.mktemp("traced-ts") / "runstatus.db", otel_env(port, SERVER_SERVICE),
                 "--otel") as server:
        yield server


def test_a_ts_worker_run_and_the_servers_spans_are_one_trace(traced: ServerProcess,
                                                            receiver: tuple[Receiver, int]) -> None:
    collector, port = receiver
    env = {**os.environ, **otel_env(port, WORKER_SERVICE)}
    out = subprocess.run(["npx", "--no-install", "tsx", "examples/traced-worker.ts", traced.address],
                         cwd=TS, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    # One run, "<run id> RUN_STATUS_FAILED trace <trace id>": what the example prints.
    (line,) = [line for line in out.stdout.splitlines() if line.strip()]
    run_id, status, _, printed_trace = line.split()
    assert status == "RUN_STATUS_FAILED"

    # The worker's spans (the provider's shutdown at exit flushed them): the run, and a step
    # span beneath it for each step.
    mine = [s for s in collector.of(WORKER_SERVICE) if attrs(s).get("runstatus.run_id") == run_id]
    (run_span,) = [s for s in mine if s.name == "run ts-traced"]
    trace_id = run_span.trace_id
    steps = {s.name: s for s in mine if s.name.startswith("step ")}
    assert set(steps) == {"step fetch", "step save"}
    assert all(s.trace_id == trace_id and s.parent_span_id == run_span.span_id for s in steps.values())
    said = attrs(run_span)
    assert said["runstatus.run_status"] == "RUN_STATUS_FAILED" and said["runstatus.work_order_id"]
    assert said["runstatus.worker_id"] == "ts-traced-worker" and said["runstatus.workflow_id"] == "ts-traced"
    assert run_span.status.code == Status.STATUS_CODE_ERROR
    assert steps["step fetch"].status.code != Status.STATUS_CODE_ERROR
    assert attrs(steps["step fetch"])["runstatus.step_run_id"]

    # The failed step's span: its exception, and how the server classified it.
    failed = steps["step save"]
    assert failed.status.code == Status.STATUS_CODE_ERROR and "TypeError" in failed.status.message
    (exception,) = [e for e in failed.events if e.name == "exception"]
    assert value(exception.attributes, "exception.type") == "TypeError"
    assert "no ward for patient 7" in value(exception.attributes, "exception.message")
    said = attrs(failed)
    assert said["runstatus.classification.status"] == "RUN_STATUS_FAILED"
    assert said["runstatus.classification.error_type"] == "ERROR_TYPE_TYPE_ERROR"
    assert said["runstatus.classification.rule"] and said["runstatus.classification.aborts_run"] is False

    # The server's spans of the run's calls: in the same trace, each beneath the TS span it
    # was made in.
    wanted = {"StartRun": 1, "StartStep": 2, "CompleteStep": 2, "CompleteRun": 1}

    def rpcs() -> list[Span]:
        found = [s for s in collector.of(SERVER_SERVICE) if s.trace_id == trace_id and s.kind == Span.SPAN_KIND_SERVER]
        methods = [attrs(s)["rpc.method"] for s in found]
        assert all(methods.count(m) == n for m, n in wanted.items()), methods
        return found

    calls = arrived(rpcs)
    by_method: dict[str, list[Span]] = {}
    for span in calls:
        by_method.setdefault(attrs(span)["rpc.method"], []).append(span)
        assert attrs(span)["runstatus.run_id"] == run_id
    assert [s.parent_span_id for s in by_method["StartRun"] + by_method["CompleteRun"]] == [run_span.span_id] * 2
    for name in ("step fetch", "step save"):
        beneath = sorted(attrs(s)["rpc.method"] for s in calls if s.parent_span_id == steps[name].span_id)
        assert beneath == ["CompleteStep", "StartStep"], name
    assert attrs(by_method["CompleteRun"][0])["runstatus.run_status"] == "RUN_STATUS_FAILED"
    # Heartbeats are not the run's calls (as the Python worker's): none is in its trace.
    assert set(by_method) <= {*wanted, "GetRun"}, sorted(by_method)

    # The run remembers the trace of the StartRun that began it: the TS worker's.
    rs = Client(traced.address, retries=1)
    try:
        stored = rs.get_run(run_id).proto
    finally:
        rs.close()
    assert stored.status == RunStatus.RUN_STATUS_FAILED
    assert stored.trace_id == trace_id.hex() == printed_trace
