// OpenTelemetry (issue 32), without a server: npm test. The Worker's spans, exported in memory,
// and the trace context its calls carry, read by fake services (an in-memory transport with the
// client's traceContext interceptor). Run in a process of its own (node --test), so the global
// provider registered here is this file's only.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { context, SpanStatusCode, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { createRouterTransport } from "@connectrpc/connect";

import { createClientsFromTransport, traceContext } from "../src/client";
import { ClassifierService } from "../src/gen/runstatus/v1/classifier_service_pb";
import { ErrorType, RunStatus } from "../src/gen/runstatus/v1/status_pb";
import { WorkOrderService } from "../src/gen/runstatus/v1/work_order_service_pb";
import { WorkerService } from "../src/gen/runstatus/v1/worker_service_pb";
import { EdgeCondition } from "../src/gen/runstatus/v1/workflow_pb";
import { Worker } from "../src/worker";

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();
after(() => provider.shutdown());

/** Services that note each call's method and traceparent header; one run of fetch -> save, save failing. */
function fakeServer(calls: Array<{ method: string; traceparent: string | null }>) {
  const seen = (method: string, header: Headers) => calls.push({ method, traceparent: header.get("traceparent") });
  let claimed = false;
  const transport = createRouterTransport(
    ({ service }) => {
      service(WorkerService, {
        claimRuns: (_, ctx) => {
          seen("ClaimRuns", ctx.requestHeader);
          if (claimed) return { runs: [] };
          claimed = true;
          const workflow = {
            id: "w",
            steps: [{ id: "fetch" }, { id: "save" }],
            edges: [{ sourceStepId: "fetch", targetStepId: "save", condition: EdgeCondition.ON_SUCCESS }],
          };
          const run = { id: "r1", workOrderId: "wo1", projectId: "p", workflowId: "w", workflowVersion: 1, number: 1 };
          return { runs: [{ run, workflow, leaseToken: "t", heartbeatInterval: { seconds: 60n } }] };
        },
        startRun: (_, ctx) => (seen("StartRun", ctx.requestHeader), { run: { id: "r1", status: RunStatus.RUNNING } }),
        startStep: (req, ctx) => (seen("StartStep", ctx.requestHeader), { stepRun: { id: `sr-${req.stepId}`, stepId: req.stepId } }),
        completeStep: (req, ctx) => {
          seen("CompleteStep", ctx.requestHeader);
          const stepId = req.stepRunId.slice(3);
          if (req.error === undefined) {
            return { runStatus: RunStatus.RUNNING, stepRun: { id: req.stepRunId, stepId, status: RunStatus.SUCCESS } };
          }
          const classification = { status: RunStatus.FAILED, errorType: ErrorType.TYPE_ERROR, rule: "name TypeError", abortsRun: false };
          return { runStatus: RunStatus.RUNNING, stepRun: { id: req.stepRunId, stepId, status: RunStatus.FAILED }, classification };
        },
        completeRun: (_, ctx) => (seen("CompleteRun", ctx.requestHeader), { run: { id: "r1", status: RunStatus.FAILED } }),
        heartbeat: (_, ctx) => (seen("Heartbeat", ctx.requestHeader), {}),
      });
      service(WorkOrderService, {});
      service(ClassifierService, {
        classify: (_, ctx) => (seen("Classify", ctx.requestHeader), {}),
      });
    },
    { transport: { interceptors: [traceContext] } },
  );
  return createClientsFromTransport(transport);
}

describe("traces", () => {
  it("a worker's run and steps are spans, and each call carries the span it was made in", async () => {
    exporter.reset();
    const calls: Array<{ method: string; traceparent: string | null }> = [];
    const rs = fakeServer(calls);
    const worker = new Worker(rs, { workerId: "ts-1" })
      .step("fetch", (state) => ({ ...state, name: "Ada" }))
      .step("save", () => {
        throw new TypeError("no ward");
      });
    const [outcome] = await worker.runUntilIdle();
    assert.equal(outcome?.status, RunStatus.FAILED);

    const spans = exporter.getFinishedSpans();
    const named = new Map(spans.map((s) => [s.name, s]));
    assert.deepEqual([...named.keys()].sort(), ["run w", "step fetch", "step save"]);
    const run = named.get("run w")!;
    const [fetch, save] = [named.get("step fetch")!, named.get("step save")!];
    assert.equal(run.parentSpanContext, undefined);
    for (const step of [fetch, save]) {
      assert.equal(step.parentSpanContext?.spanId, run.spanContext().spanId);
      assert.equal(step.spanContext().traceId, run.spanContext().traceId);
    }
    assert.deepEqual(run.attributes, {
      "runstatus.run_id": "r1",
      "runstatus.work_order_id": "wo1",
      "runstatus.project_id": "p",
      "runstatus.workflow_id": "w",
      "runstatus.workflow_version": 1,
      "runstatus.run_number": 1,
      "runstatus.worker_id": "ts-1",
      "runstatus.run_status": "RUN_STATUS_FAILED",
    });
    assert.equal(run.status.code, SpanStatusCode.ERROR);
    assert.equal(fetch.status.code, SpanStatusCode.UNSET);
    assert.equal(fetch.attributes["runstatus.step_run_id"], "sr-fetch");

    // The failed step: its exception, its status, the server's classification.
    assert.equal(save.status.code, SpanStatusCode.ERROR);
    assert.equal(save.status.message, "TypeError: no ward");
    const [exception] = save.events;
    assert.equal(exception?.name, "exception");
    assert.equal(exception?.attributes?.["exception.type"], "TypeError");
    assert.equal(exception?.attributes?.["exception.message"], "no ward");
    assert.match(String(exception?.attributes?.["exception.stacktrace"]), /TypeError: no ward/);
    assert.equal(save.attributes["runstatus.classification.status"], "RUN_STATUS_FAILED");
    assert.equal(save.attributes["runstatus.classification.error_type"], "ERROR_TYPE_TYPE_ERROR");
    assert.equal(save.attributes["runstatus.classification.rule"], "name TypeError");
    assert.equal(save.attributes["runstatus.classification.aborts_run"], false);

    // Each call's traceparent names the span it was made in; the claims, made outside any, none.
    const parent = (span: typeof run) => `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`;
    assert.deepEqual(calls, [
      { method: "ClaimRuns", traceparent: null },
      { method: "StartRun", traceparent: parent(run) },
      { method: "StartStep", traceparent: parent(fetch) },
      { method: "CompleteStep", traceparent: parent(fetch) },
      { method: "StartStep", traceparent: parent(save) },
      { method: "CompleteStep", traceparent: parent(save) },
      { method: "CompleteRun", traceparent: parent(run) },
      { method: "ClaimRuns", traceparent: null },
    ]);
  });

  it("a worker's spans go to the tracerProvider it is given", async () => {
    exporter.reset();
    const own = new InMemorySpanExporter();
    const tracerProvider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(own)] });
    const worker = new Worker(fakeServer([]), { tracerProvider }).step("fetch", (s) => s).step("save", (s) => s);
    await worker.runUntilIdle();
    assert.deepEqual(own.getFinishedSpans().map((s) => s.name).sort(), ["run w", "step fetch", "step save"]);
    assert.deepEqual(exporter.getFinishedSpans(), []);
    await tracerProvider.shutdown();
  });

  it("a call made in an application's span carries it, an unsampled one says so, none outside a span", async () => {
    const calls: Array<{ method: string; traceparent: string | null }> = [];
    const rs = fakeServer(calls);
    const span = trace.getTracer("test").startSpan("mine");
    await context.with(trace.setSpan(context.active(), span), () => rs.classifier.classify({}));
    span.end();
    const unsampled = trace.wrapSpanContext({ traceId: "1".repeat(32), spanId: "2".repeat(16), traceFlags: 0 });
    await context.with(trace.setSpan(context.active(), unsampled), () => rs.classifier.classify({}));
    await rs.classifier.classify({});
    assert.deepEqual(calls.map((c) => c.traceparent), [
      `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`,
      `00-${"1".repeat(32)}-${"2".repeat(16)}-00`,
      null,
    ]);
  });
});
