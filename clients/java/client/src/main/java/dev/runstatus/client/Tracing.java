package dev.runstatus.client;

import dev.runstatus.v1.Classification;
import dev.runstatus.v1.ClaimedRun;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.Run;
import dev.runstatus.v1.RunStatus;
import io.grpc.ClientInterceptor;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import io.opentelemetry.instrumentation.grpc.v1_6.GrpcTelemetry;

/**
 * Traces over OpenTelemetry: the only class of the client that names its types, loaded only when
 * the client was given an OpenTelemetry instance ({@link RunstatusClient.Builder#openTelemetry}),
 * so opentelemetry-api and opentelemetry-grpc-1.6 stay optional.
 *
 * <p>Every call goes through OpenTelemetry's gRPC instrumentation: a client span, child of the
 * current span, whose W3C {@code traceparent} the call carries, so the server's span of the call
 * is its child. The Worker's spans are the Python client's: a run's ("run WORKFLOW") and a step's
 * ("step STEP"), each current while its calls are made; a step's error is recorded on its span
 * with the server's classification, and a run's span ends with the run's status.
 */
final class Tracing implements Traces {
  private final Tracer tracer;

  Tracing(OpenTelemetry openTelemetry) {
    this.tracer = openTelemetry.getTracer("runstatus.worker");
  }

  /** The gRPC instrumentation's client interceptor, or why it cannot be had. */
  static ClientInterceptor clientInterceptor(OpenTelemetry openTelemetry) {
    try {
      return GrpcTelemetry.create(openTelemetry).createClientInterceptor();
    } catch (NoClassDefFoundError e) {
      throw new IllegalStateException("tracing the client's calls needs "
          + "io.opentelemetry.instrumentation:opentelemetry-grpc-1.6 on the classpath", e);
    }
  }

  @Override
  public Current run(ClaimedRun claimed, String workerId) {
    Run run = claimed.getRun();
    Span span = tracer.spanBuilder("run " + run.getWorkflowId())
        .setAttribute("runstatus.run_id", run.getId())
        .setAttribute("runstatus.work_order_id", run.getWorkOrderId())
        .setAttribute("runstatus.project_id", run.getProjectId())
        .setAttribute("runstatus.workflow_id", run.getWorkflowId())
        .setAttribute("runstatus.workflow_version", run.getWorkflowVersion())
        .setAttribute("runstatus.run_number", run.getNumber())
        .setAttribute("runstatus.worker_id", workerId)
        .startSpan();
    return new Made(span);
  }

  @Override
  public Current step(String runId, String stepId) {
    return new Made(tracer.spanBuilder("step " + stepId)
        .setAttribute("runstatus.run_id", runId)
        .setAttribute("runstatus.step_id", stepId)
        .startSpan());
  }

  /** A started span, current on this thread until closed. */
  private static final class Made implements Current {
    private final Span span;
    private final Scope scope;

    Made(Span span) {
      this.span = span;
      this.scope = span.makeCurrent();
    }

    @Override
    public void stepRun(String stepRunId) {
      span.setAttribute("runstatus.step_run_id", stepRunId);
    }

    @Override
    public void stepFailed(Throwable error, ErrorReport report, Classification classification) {
      span.recordException(error);
      String description = report.getName() + ": " + report.getMessage();
      span.setStatus(StatusCode.ERROR, description.length() > 500 ? description.substring(0, 500) : description);
      if (classification != null) {
        span.setAttribute("runstatus.classification.status", classification.getStatus().name());
        span.setAttribute("runstatus.classification.error_type", classification.getErrorType().name());
        span.setAttribute("runstatus.classification.rule", classification.getRule());
        span.setAttribute("runstatus.classification.aborts_run", classification.getAbortsRun());
      }
    }

    @Override
    public void runEnded(RunStatus status) {
      span.setAttribute("runstatus.run_status", status.name());
      if (status != RunStatus.RUN_STATUS_SUCCESS && status != RunStatus.RUN_STATUS_CANCELLED) {
        span.setStatus(StatusCode.ERROR, status.name());
      }
    }

    @Override
    public void close() {
      scope.close();
      span.end();
    }
  }
}
