package dev.runstatus.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.runstatus.v1.RunStatus;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.propagation.ContextPropagators;
import io.opentelemetry.sdk.OpenTelemetrySdk;
import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import io.opentelemetry.sdk.trace.SdkTracerProvider;
import io.opentelemetry.sdk.trace.data.EventData;
import io.opentelemetry.sdk.trace.data.SpanData;
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** A client given OpenTelemetry: its calls carry their spans' traceparent, its Worker makes run and step spans. */
class TracingTest {
  @Test
  void aWorkersRunStepsAndCallsAreOneTraceWithTheStepErrorAndItsClassification() throws Exception {
    InMemorySpanExporter exported = InMemorySpanExporter.create();
    OpenTelemetrySdk otel = OpenTelemetrySdk.builder()
        .setTracerProvider(SdkTracerProvider.builder().addSpanProcessor(SimpleSpanProcessor.create(exported)).build())
        .setPropagators(ContextPropagators.create(W3CTraceContextPropagator.getInstance()))
        .build();
    AtomicReference<String> currentInA = new AtomicReference<>();
    try (FakeWorkerServer server = new FakeWorkerServer();
        RunstatusClient client = RunstatusClient.builder(server.address()).openTelemetry(otel).build()) {
      Worker worker = new Worker(client, "traced", "p")
          .step("a", ctx -> {
            currentInA.set(io.opentelemetry.api.trace.Span.current().getSpanContext().getSpanId());
            return null;
          })
          .step("b", ctx -> {
            throw new NoSuchElementException("no ward");
          });
      List<Worker.RunOutcome> outcomes = worker.runUntilIdle();
      assertEquals(RunStatus.RUN_STATUS_FAILED, outcomes.get(0).status());

      Map<String, SpanData> spans = exported.getFinishedSpanItems().stream()
          .filter(s -> s.getKind() == SpanKind.INTERNAL)
          .collect(Collectors.toMap(SpanData::getName, Function.identity()));
      assertEquals(List.of("run w", "step a", "step b"), spans.keySet().stream().sorted().toList());
      SpanData run = spans.get("run w");
      String traceId = run.getTraceId();
      for (String step : List.of("step a", "step b")) {
        assertEquals(run.getSpanId(), spans.get(step).getParentSpanId(), step);
        assertEquals("r1", spans.get(step).getAttributes().get(AttributeKey.stringKey("runstatus.run_id")));
      }
      assertEquals(spans.get("step a").getSpanId(), currentInA.get(), "the step function runs in its span");
      assertEquals("o1", run.getAttributes().get(AttributeKey.stringKey("runstatus.work_order_id")));
      assertEquals("RUN_STATUS_FAILED", run.getAttributes().get(AttributeKey.stringKey("runstatus.run_status")));
      assertEquals(StatusCode.ERROR, run.getStatus().getStatusCode());
      assertEquals(StatusCode.UNSET, spans.get("step a").getStatus().getStatusCode());

      SpanData failed = spans.get("step b");
      assertEquals(StatusCode.ERROR, failed.getStatus().getStatusCode());
      assertEquals("NoSuchElementException: no ward", failed.getStatus().getDescription());
      EventData exception = failed.getEvents().get(0);
      assertEquals("exception", exception.getName());
      assertEquals("java.util.NoSuchElementException",
          exception.getAttributes().get(AttributeKey.stringKey("exception.type")));
      assertEquals("RUN_STATUS_FAILED", failed.getAttributes().get(AttributeKey.stringKey("runstatus.classification.status")));
      assertEquals("ERROR_TYPE_RANGE_ERROR",
          failed.getAttributes().get(AttributeKey.stringKey("runstatus.classification.error_type")));
      assertEquals("alias:java:NoSuchElementException",
          failed.getAttributes().get(AttributeKey.stringKey("runstatus.classification.rule")));
      assertEquals(false, failed.getAttributes().get(AttributeKey.booleanKey("runstatus.classification.aborts_run")));
      assertEquals("sr-b", failed.getAttributes().get(AttributeKey.stringKey("runstatus.step_run_id")));

      // Each call the server saw carried the traceparent of its client span, beneath the run's or a step's span.
      Map<String, SpanData> clientSpans = exported.getFinishedSpanItems().stream()
          .filter(s -> s.getKind() == SpanKind.CLIENT)
          .collect(Collectors.toMap(SpanData::getSpanId, Function.identity()));
      Map<String, String> parentOf = Map.of(
          "StartRun", "run w", "CompleteRun", "run w", "StartStep", "step", "CompleteStep", "step");
      int traced = 0;
      for (FakeWorkerServer.Call call : server.calls) {
        String[] parts = call.traceparent().split("-");
        SpanData made = clientSpans.get(parts[2]);
        assertEquals("runstatus.v1.WorkerService/" + call.method(), made.getName());
        if (call.method().equals("ClaimRuns")) {
          continue; // made before any run: a trace of its own
        }
        traced++;
        assertEquals(traceId, parts[1], call.method());
        String parent = exported.getFinishedSpanItems().stream()
            .filter(s -> s.getSpanId().equals(made.getParentSpanId())).findFirst().orElseThrow().getName();
        assertTrue(parent.startsWith(parentOf.get(call.method())), call.method() + " beneath " + parent);
      }
      assertEquals(6, traced); // StartRun, StartStep and CompleteStep twice, CompleteRun
    } finally {
      otel.close();
    }
  }

  @Test
  void withoutOpenTelemetryCallsCarryNoTraceparent() throws Exception {
    try (FakeWorkerServer server = new FakeWorkerServer();
        RunstatusClient client = RunstatusClient.connect(server.address())) {
      new Worker(client, "untraced", "p").step("a", ctx -> null).step("b", ctx -> null).runUntilIdle();
      assertEquals(8, server.calls.size()); // ClaimRuns twice (the second finds none), and six reports
      server.calls.forEach(call -> assertNull(call.traceparent(), call.method()));
    }
  }
}
