// Example: a traced Worker. With OpenTelemetry's SDK registered, the Worker makes a span per
// run and per step, and every call carries the active span's `traceparent`, so the spans of a
// server started with --otel are their children: a run is one trace, from the worker's span
// down to the server's store writes. A failing step's span has its error and the server's
// classification of it.
//
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_SERVICE_NAME=ts-worker \
//     npx tsx examples/traced-worker.ts 127.0.0.1:50051
//
// The SDK and the exporter are this example's (devDependencies), read the standard OTEL_*
// variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_BSP_*),
// and are set up only when OTEL_EXPORTER_OTLP_ENDPOINT is set. The client itself needs only
// @opentelemetry/api (an optional peer dependency), and only to trace.
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { defaultResource, detectResources, envDetector } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

import { createClients, runStatusName, Worker } from "../src/index";
import { EdgeCondition } from "../src/gen/runstatus/v1/workflow_pb";

// register(): the global provider, with the W3C trace context propagator the client's calls
// inject with, and an AsyncLocalStorage context manager (a span stays active across awaits).
const provider = process.env.OTEL_EXPORTER_OTLP_ENDPOINT
  ? new NodeTracerProvider({
      resource: defaultResource().merge(detectResources({ detectors: [envDetector] })),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
    })
  : undefined;
provider?.register();

const rs = createClients(process.argv[2] ?? "127.0.0.1:50051", { timeoutMs: 10_000 });
try {
  await rs.workflows.createWorkflow({
    workflow: {
      id: "ts-traced",
      steps: [{ id: "fetch" }, { id: "save" }],
      edges: [{ sourceStepId: "fetch", targetStepId: "save", condition: EdgeCondition.ON_SUCCESS }],
    },
  });
  await rs.workOrders.createWorkOrder({ workflowId: "ts-traced", input: { patient: 7 } });

  const worker = new Worker(rs, { workerId: "ts-traced-worker", projectId: "default" })
    .step("fetch", (state) => ({ ...state, name: "Ada" }))
    .step("save", (state) => {
      throw new TypeError(`no ward for patient ${state.patient}`); // FAILED, classified by the server
    });
  for (const { runId, status } of await worker.runUntilIdle()) {
    const { run } = await rs.workOrders.getRun({ runId });
    console.log(runId, runStatusName(status), "trace", run?.traceId || "-"); // the trace the run is in
  }
} finally {
  rs.close();
  await provider?.shutdown(); // exports the spans still waiting in the batch
}
