package dev.runstatus.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.runstatus.v1.RunStatus;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * OpenTelemetry is optional: run by surefire's execution "without-opentelemetry" (client/pom.xml),
 * whose classpath lacks it, the client and its Worker work and load none of it.
 */
class WithoutOpenTelemetryTest {
  @Test
  void theClientAndItsWorkerWorkWithoutOpenTelemetryOnTheClasspath() throws Exception {
    assertThrows(ClassNotFoundException.class, () -> Class.forName("io.opentelemetry.api.OpenTelemetry"));
    assertThrows(ClassNotFoundException.class,
        () -> Class.forName("io.opentelemetry.instrumentation.grpc.v1_6.GrpcTelemetry"));
    try (FakeWorkerServer server = new FakeWorkerServer();
        RunstatusClient client = RunstatusClient.connect(server.address())) {
      List<Worker.RunOutcome> outcomes = new Worker(client, "plain", "p")
          .step("a", ctx -> null)
          .step("b", ctx -> {
            throw new IllegalStateException("no ward");
          })
          .runUntilIdle();
      assertEquals(RunStatus.RUN_STATUS_FAILED, outcomes.get(0).status());
      assertEquals(List.of("a", "b"), outcomes.get(0).executed());
      server.calls.forEach(call -> assertNull(call.traceparent(), call.method()));
    }
  }
}
