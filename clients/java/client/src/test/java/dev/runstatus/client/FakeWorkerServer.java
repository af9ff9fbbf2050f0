package dev.runstatus.client;

import dev.runstatus.v1.ClaimRunsRequest;
import dev.runstatus.v1.ClaimRunsResponse;
import dev.runstatus.v1.ClaimedRun;
import dev.runstatus.v1.Classification;
import dev.runstatus.v1.CompleteRunRequest;
import dev.runstatus.v1.CompleteRunResponse;
import dev.runstatus.v1.CompleteStepRequest;
import dev.runstatus.v1.CompleteStepResponse;
import dev.runstatus.v1.Edge;
import dev.runstatus.v1.EdgeCondition;
import dev.runstatus.v1.ErrorType;
import dev.runstatus.v1.Run;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.StartRunRequest;
import dev.runstatus.v1.StartRunResponse;
import dev.runstatus.v1.StartStepRequest;
import dev.runstatus.v1.StartStepResponse;
import dev.runstatus.v1.Step;
import dev.runstatus.v1.StepRun;
import dev.runstatus.v1.WorkerServiceGrpc;
import dev.runstatus.v1.Workflow;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A WorkerService of the tests' own: it hands out one run of workflow "w" (steps a then b, ON_SUCCESS),
 * classifies any step error as a FAILED RangeError, and records each call's method and
 * {@code traceparent} header.
 */
final class FakeWorkerServer implements AutoCloseable {
  private static final Metadata.Key<String> TRACEPARENT = Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER);

  /** A call as the server saw it; traceparent null when the call carried none. */
  record Call(String method, String traceparent) {}

  final List<Call> calls = Collections.synchronizedList(new ArrayList<>());
  private final Server server;
  private boolean claimed;
  private boolean failed;

  FakeWorkerServer() throws Exception {
    ServerInterceptor recorder = new ServerInterceptor() {
      @Override
      public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
          ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
        calls.add(new Call(call.getMethodDescriptor().getBareMethodName(), headers.get(TRACEPARENT)));
        return next.startCall(call, headers);
      }
    };
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(ServerInterceptors.intercept(new Service(), recorder))
        .build()
        .start();
  }

  String address() {
    return "127.0.0.1:" + server.getPort();
  }

  @Override
  public void close() throws InterruptedException {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private final class Service extends WorkerServiceGrpc.WorkerServiceImplBase {
    @Override
    public synchronized void claimRuns(ClaimRunsRequest request, StreamObserver<ClaimRunsResponse> answer) {
      ClaimRunsResponse.Builder runs = ClaimRunsResponse.newBuilder();
      if (!claimed) {
        claimed = true;
        runs.addRuns(ClaimedRun.newBuilder()
            .setRun(Run.newBuilder().setId("r1").setWorkOrderId("o1").setProjectId("p").setWorkflowId("w")
                .setWorkflowVersion(1).setNumber(1).setStatus(RunStatus.RUN_STATUS_PENDING))
            .setWorkflow(Workflow.newBuilder().setId("w")
                .addSteps(Step.newBuilder().setId("a")).addSteps(Step.newBuilder().setId("b"))
                .addEdges(Edge.newBuilder().setSourceStepId("a").setTargetStepId("b")
                    .setCondition(EdgeCondition.EDGE_CONDITION_ON_SUCCESS)))
            .setLeaseToken("t")
            .setHeartbeatInterval(com.google.protobuf.Duration.newBuilder().setSeconds(60)));
      }
      answer.onNext(runs.build());
      answer.onCompleted();
    }

    @Override
    public void startRun(StartRunRequest request, StreamObserver<StartRunResponse> answer) {
      answer.onNext(StartRunResponse.newBuilder().setRun(Run.newBuilder().setId(request.getRunId())).build());
      answer.onCompleted();
    }

    @Override
    public void startStep(StartStepRequest request, StreamObserver<StartStepResponse> answer) {
      answer.onNext(StartStepResponse.newBuilder()
          .setStepRun(StepRun.newBuilder().setId("sr-" + request.getStepId()).setStepId(request.getStepId())).build());
      answer.onCompleted();
    }

    @Override
    public synchronized void completeStep(CompleteStepRequest request, StreamObserver<CompleteStepResponse> answer) {
      String stepId = request.getStepRunId().substring("sr-".length());
      CompleteStepResponse.Builder response = CompleteStepResponse.newBuilder().setRunStatus(RunStatus.RUN_STATUS_RUNNING);
      if (request.hasError()) {
        failed = true;
        response.setClassification(Classification.newBuilder().setStatus(RunStatus.RUN_STATUS_FAILED)
            .setErrorType(ErrorType.ERROR_TYPE_RANGE_ERROR).setRule("alias:java:NoSuchElementException"));
      }
      response.setStepRun(StepRun.newBuilder().setId(request.getStepRunId()).setStepId(stepId)
          .setStatus(request.hasError() ? RunStatus.RUN_STATUS_FAILED : RunStatus.RUN_STATUS_SUCCESS));
      answer.onNext(response.build());
      answer.onCompleted();
    }

    @Override
    public synchronized void completeRun(CompleteRunRequest request, StreamObserver<CompleteRunResponse> answer) {
      RunStatus status = failed ? RunStatus.RUN_STATUS_FAILED : RunStatus.RUN_STATUS_SUCCESS;
      answer.onNext(CompleteRunResponse.newBuilder()
          .setRun(Run.newBuilder().setId(request.getRunId()).setStatus(status)).build());
      answer.onCompleted();
    }
  }
}
