// Traced worker: a Worker whose runs, steps and calls are spans of one trace with the server's.
//
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_SERVICE_NAME=java-worker \
//     mvn -q compile exec:java -Dexec.mainClass=dev.runstatus.example.TracedWorker -Dexec.args=127.0.0.1:50051
//
// With OTEL_EXPORTER_OTLP_ENDPOINT set, the OpenTelemetry SDK is configured from the standard
// OTEL_* variables and exports over OTLP/gRPC; without it the worker runs untraced. Start the
// server with --otel, on the same collector, to see its spans beneath the worker's.
package dev.runstatus.example;

import com.google.protobuf.Value;
import dev.runstatus.client.RunstatusClient;
import dev.runstatus.client.StatusTable;
import dev.runstatus.client.Worker;
import dev.runstatus.v1.CreateProjectRequest;
import dev.runstatus.v1.CreateWorkOrderRequest;
import dev.runstatus.v1.CreateWorkflowRequest;
import dev.runstatus.v1.Edge;
import dev.runstatus.v1.EdgeCondition;
import dev.runstatus.v1.GetRunRequest;
import dev.runstatus.v1.Project;
import dev.runstatus.v1.Step;
import dev.runstatus.v1.Workflow;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.autoconfigure.AutoConfiguredOpenTelemetrySdk;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.TimeUnit;

public final class TracedWorker {
  public static void main(String[] args) {
    String address = args.length > 0 ? args[0] : "127.0.0.1:50051";
    OpenTelemetrySdk otel = System.getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == null ? null
        : AutoConfiguredOpenTelemetrySdk.builder()
            // Defaults the OTEL_* variables override: traces only, over OTLP/gRPC.
            .addPropertiesSupplier(() -> Map.of(
                "otel.service.name", "runstatus-java-worker",
                "otel.exporter.otlp.protocol", "grpc",
                "otel.metrics.exporter", "none",
                "otel.logs.exporter", "none"))
            .disableShutdownHook() // shut down below, once the client is closed
            .build().getOpenTelemetrySdk();
    try (RunstatusClient rs = RunstatusClient.builder(address).openTelemetry(otel).build()) {
      // A project of its own, so the worker claims this run only.
      String project = "java-traced-" + System.currentTimeMillis();
      rs.projects().createProject(CreateProjectRequest.newBuilder()
          .setProject(Project.newBuilder().setId(project).setName("traced Java worker")).build());
      rs.workflows().createWorkflow(CreateWorkflowRequest.newBuilder()
          .setWorkflow(Workflow.newBuilder()
              .setId("referral").setProjectId(project)
              .addSteps(Step.newBuilder().setId("fetch"))
              .addSteps(Step.newBuilder().setId("save"))
              .addEdges(Edge.newBuilder().setSourceStepId("fetch").setTargetStepId("save")
                  .setCondition(EdgeCondition.EDGE_CONDITION_ON_SUCCESS)))
          .build());
      rs.workOrders().createWorkOrder(CreateWorkOrderRequest.newBuilder()
          .setProjectId(project).setWorkflowId("referral").build());

      Worker worker = new Worker(rs, "java-traced", project)
          .step("fetch", ctx -> ctx.state().toBuilder()
              .putFields("patient", Value.newBuilder().setStringValue("Ada").build()).build())
          .step("save", ctx -> {
            throw new NoSuchElementException("no ward for " + ctx.state().getFieldsOrThrow("patient").getStringValue());
          }); // the step FAILED (a RangeError), and so does the run
      for (Worker.RunOutcome run : worker.runUntilIdle()) {
        String trace = rs.workOrders().getRun(GetRunRequest.newBuilder().setRunId(run.runId()).build())
            .getRun().getTraceId();
        System.out.println("run " + run.runId() + " " + StatusTable.chip(run.status()) + " " + run.status()
            + " " + run.executed() + " trace " + (trace.isEmpty() ? "-" : trace));
      }
    } finally {
      if (otel != null) {
        otel.shutdown().join(10, TimeUnit.SECONDS); // exports the spans still batched
      }
    }
  }
}
