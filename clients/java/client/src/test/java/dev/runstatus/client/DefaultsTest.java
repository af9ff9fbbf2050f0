package dev.runstatus.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.protobuf.Timestamp;
import com.google.rpc.ErrorInfo;
import dev.runstatus.v1.CreateWorkOrderRequest;
import dev.runstatus.v1.CreateWorkOrderResponse;
import dev.runstatus.v1.Edge;
import dev.runstatus.v1.EdgeCondition;
import dev.runstatus.v1.ErrorReason;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.ErrorSeverity;
import dev.runstatus.v1.ErrorSource;
import dev.runstatus.v1.Event;
import dev.runstatus.v1.Run;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.Step;
import dev.runstatus.v1.StepRun;
import dev.runstatus.v1.WatchWorkOrdersRequest;
import dev.runstatus.v1.WatchWorkOrdersResponse;
import dev.runstatus.v1.WorkOrder;
import dev.runstatus.v1.WorkOrderServiceGrpc;
import dev.runstatus.v1.Workflow;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The safe defaults, the watch's resume, error reports and the plan, against a fake server of the test's own. */
class DefaultsTest {
  private final List<String> requestIds = Collections.synchronizedList(new ArrayList<>());
  private final List<String> watchCursors = Collections.synchronizedList(new ArrayList<>());
  private final List<String> watchTimeouts = Collections.synchronizedList(new ArrayList<>());
  private final AtomicInteger failuresLeft = new AtomicInteger();
  private Server server;
  private String address;

  /** CreateWorkOrder fails UNAVAILABLE while failuresLeft lasts; a watch breaks after two events, once. */
  final class FakeWorkOrders extends WorkOrderServiceGrpc.WorkOrderServiceImplBase {
    @Override
    public void createWorkOrder(CreateWorkOrderRequest request, StreamObserver<CreateWorkOrderResponse> answer) {
      requestIds.add(request.getRequestId());
      if (failuresLeft.getAndDecrement() > 0) {
        answer.onError(Status.UNAVAILABLE.withDescription("try again").asRuntimeException());
        return;
      }
      answer.onNext(CreateWorkOrderResponse.newBuilder().setWorkOrder(WorkOrder.newBuilder().setId("w1")).build());
      answer.onCompleted();
    }

    @Override
    public void watchWorkOrders(WatchWorkOrdersRequest request, StreamObserver<WatchWorkOrdersResponse> answer) {
      watchCursors.add(request.getAfterCursor());
      if (request.getAfterCursor().equals("pruned")) {
        answer.onError(StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
            .setCode(Status.Code.OUT_OF_RANGE.value()).setMessage("cursor expired")
            .addDetails(Any.pack(ErrorInfo.newBuilder().setReason("CURSOR_EXPIRED").setDomain("runstatus.v1")
                .putMetadata("oldest_cursor", "41").build()))
            .build()));
        return;
      }
      int from = request.getAfterCursor().isEmpty() ? 0 : Integer.parseInt(request.getAfterCursor());
      for (int i = from + 1; i <= from + 2; i++) {
        answer.onNext(WatchWorkOrdersResponse.newBuilder().setCursor(String.valueOf(i))
            .setEvent(Event.newBuilder().setSequence(i)).build());
      }
      if (from == 0) {
        answer.onError(Status.UNAVAILABLE.withDescription("restarting").asRuntimeException());
      } // else: left open, as a live watch is
    }
  }

  @BeforeEach
  void start() throws Exception {
    ServerInterceptor recorder = new ServerInterceptor() {
      @Override
      public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
          ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
        if (call.getMethodDescriptor().getBareMethodName().equals("WatchWorkOrders")) {
          watchTimeouts.add(headers.get(Metadata.Key.of("grpc-timeout", Metadata.ASCII_STRING_MARSHALLER)));
        }
        return next.startCall(call, headers);
      }
    };
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(ServerInterceptors.intercept(new FakeWorkOrders(), recorder))
        .build()
        .start();
    address = "127.0.0.1:" + server.getPort();
  }

  @AfterEach
  void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private static CreateWorkOrderRequest create() {
    return CreateWorkOrderRequest.newBuilder().setWorkflowId("wf").build();
  }

  @Test
  void aRetryAfterUnavailableCarriesTheSameRequestId() {
    failuresLeft.set(2);
    try (RunstatusClient client = RunstatusClient.connect(address)) {
      CreateWorkOrderRequest request = create();
      assertEquals("w1", client.workOrders().createWorkOrder(request).getWorkOrder().getId());
      assertEquals("", request.getRequestId(), "the caller's message is left as it was");
    }
    assertEquals(3, requestIds.size());
    assertFalse(requestIds.get(0).isEmpty());
    assertEquals(1, requestIds.stream().distinct().count(), requestIds.toString());
  }

  @Test
  void theCallersOwnRequestIdIsKept() {
    try (RunstatusClient client = RunstatusClient.connect(address)) {
      client.workOrders().createWorkOrder(create().toBuilder().setRequestId("mine").build());
    }
    assertEquals(List.of("mine"), requestIds);
  }

  @Test
  void withoutRetriesUnavailableIsThrownAtOnce() {
    failuresLeft.set(1);
    try (RunstatusClient client = RunstatusClient.builder(address).retries(false).build()) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
          () -> client.workOrders().createWorkOrder(create()));
      assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    }
    assertEquals(1, requestIds.size());
    assertFalse(requestIds.get(0).isEmpty(), "request ids are filled in without retries too");
  }

  @Test
  void theWatchResumesFromItsCursorWithoutADeadline() {
    try (RunstatusClient client = RunstatusClient.builder(address).defaultDeadline(Duration.ofSeconds(5)).build();
         WorkOrderWatch watch = client.watch(WatchWorkOrdersRequest.getDefaultInstance())) {
      List<Long> sequences = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        sequences.add(watch.next().getEvent().getSequence());
      }
      assertEquals(List.of(1L, 2L, 3L, 4L), sequences);
      assertEquals("4", watch.cursor());
      assertEquals(1, watch.reconnects());
      assertEquals(List.of("", "2"), watchCursors);
      assertEquals(2, watchTimeouts.size());
      watchTimeouts.forEach(timeout -> assertNull(timeout, "a watch is sent no deadline"));
      watch.close();
      assertFalse(watch.hasNext(), "closed");
    }
  }

  @Test
  void anExpiredCursorEndsTheWatchWithCursorExpiredException() {
    try (RunstatusClient client = RunstatusClient.builder(address).build();
         WorkOrderWatch watch = client.watch(WatchWorkOrdersRequest.newBuilder().setAfterCursor("pruned").build())) {
      CursorExpiredException expired = assertThrows(CursorExpiredException.class, watch::hasNext);
      assertEquals("41", expired.oldestCursor());
      assertEquals(Status.Code.OUT_OF_RANGE, expired.getStatus().getCode());
      assertEquals(ErrorReason.ERROR_REASON_CURSOR_EXPIRED, ErrorDetails.reasonOf(expired));
      assertEquals(List.of("pruned"), watchCursors, "never reopened");
    }
  }

  @Test
  void anErrorReportNamesTheClassAndWhatItWraps() {
    ErrorReport report = ErrorReports.of(new StepError("boom", "TypeError", ErrorSeverity.ERROR_SEVERITY_CRASH));
    assertEquals("StepError", report.getName());
    assertEquals("boom", report.getMessage());
    assertEquals("TypeError", report.getSubtype());
    assertEquals(ErrorSeverity.ERROR_SEVERITY_CRASH, report.getSeverity());
    assertEquals(ErrorSource.ERROR_SOURCE_JOB, report.getSource());
    assertEquals("java", report.getLanguage());
    assertTrue(report.getStack().contains("DefaultsTest"));

    ErrorReport plain = ErrorReports.of(new NullPointerException(), ErrorSource.ERROR_SOURCE_RUNTIME);
    assertEquals("NullPointerException", plain.getName());
    assertEquals("", plain.getMessage());
    assertEquals("", plain.getSubtype());
    assertEquals(ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED, plain.getSeverity());
    assertEquals(ErrorSource.ERROR_SOURCE_RUNTIME, plain.getSource());
  }

  @Test
  void aStepErrorTakesItsNameAndItsSeverityInTheRuntimesWords() {
    // OpenFn's engine: an uncaught error in job code is an ExecutionError re-tagged crash.
    ErrorReport report = ErrorReports.of(StepError.of("ExecutionError", "thrown from a timer", "", "crash"));
    assertEquals("ExecutionError", report.getName());
    assertEquals("thrown from a timer", report.getMessage());
    assertEquals("", report.getSubtype());
    assertEquals(ErrorSeverity.ERROR_SEVERITY_CRASH, report.getSeverity());
    report = ErrorReports.of(StepError.of("RuntimeError", "x is not a function", "TypeError", "FAIL",
        new IllegalStateException("cause")));
    assertEquals("RuntimeError", report.getName());
    assertEquals("TypeError", report.getSubtype());
    assertEquals(ErrorSeverity.ERROR_SEVERITY_FAIL, report.getSeverity());
    // No name: the class's; a word the server does not know: no severity.
    report = ErrorReports.of(StepError.of("", "odd", "", "fatal"));
    assertEquals("StepError", report.getName());
    assertEquals(ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED, report.getSeverity());
  }

  @Test
  void parseSeverityReadsTheRuntimesWordsAndTheEnumsNames() {
    assertEquals(ErrorSeverity.ERROR_SEVERITY_CRASH, ErrorReports.parseSeverity("crash"));
    assertEquals(ErrorSeverity.ERROR_SEVERITY_KILL, ErrorReports.parseSeverity(" Kill "));
    assertEquals(ErrorSeverity.ERROR_SEVERITY_FAIL, ErrorReports.parseSeverity("FAIL"));
    assertEquals(ErrorSeverity.ERROR_SEVERITY_EXCEPTION, ErrorReports.parseSeverity("error_severity_exception"));
    for (String none : new String[] {null, "", "-"}) {
      assertEquals(ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED, ErrorReports.parseSeverity(none));
    }
    for (String bad : new String[] {"fatal", "unspecified", "ERROR_SEVERITY_UNSPECIFIED", "UNRECOGNIZED"}) {
      assertThrows(IllegalArgumentException.class, () -> ErrorReports.parseSeverity(bad), bad);
    }
  }

  @Test
  void reportFieldsAreCutByUtf8BytesNeverInsideACharacter() {
    String text = "é".repeat(10); // 2 bytes each
    assertEquals("é".repeat(2), ErrorReports.utf8Head(text, 5));
    assertEquals("é".repeat(2), ErrorReports.utf8Tail(text, 5));
    assertEquals(text, ErrorReports.utf8Head(text, 20));
  }

  private static Edge edge(String from, String to, EdgeCondition condition) {
    return Edge.newBuilder().setSourceStepId(from).setTargetStepId(to).setCondition(condition).build();
  }

  @Test
  void thePlanStartsAtTheRootsAndFollowsTheEdgesTheRulesAllow() {
    Workflow wf = Workflow.newBuilder()
        .addSteps(Step.newBuilder().setId("a")).addSteps(Step.newBuilder().setId("b"))
        .addSteps(Step.newBuilder().setId("c")).addSteps(Step.newBuilder().setId("d"))
        .addEdges(edge("a", "b", EdgeCondition.EDGE_CONDITION_ON_SUCCESS))
        .addEdges(edge("a", "c", EdgeCondition.EDGE_CONDITION_ON_FAILURE))
        .addEdges(Edge.newBuilder().setSourceStepId("a").setTargetStepId("d")
            .setCondition(EdgeCondition.EDGE_CONDITION_EXPRESSION).setExpression("x"))
        .build();
    assertEquals(List.of(new Plan.Start("a", null)), Plan.starts(Run.getDefaultInstance(), wf));
    StepRun ok = StepRun.newBuilder().setStepId("a").setStatus(RunStatus.RUN_STATUS_SUCCESS).build();
    StepRun failed = ok.toBuilder().setStatus(RunStatus.RUN_STATUS_FAILED).build();
    assertEquals(List.of("b", "d"), Plan.nextSteps(wf, ok, e -> true));
    assertEquals(List.of("b"), Plan.nextSteps(wf, ok, e -> false));
    assertEquals(List.of("c", "d"), Plan.nextSteps(wf, failed, e -> true));

    // A retry from b starts there, led to by the latest reused step run of a that allows it.
    StepRun older = ok.toBuilder().setId("s1").setEndTime(Timestamp.newBuilder().setSeconds(1)).build();
    StepRun newer = ok.toBuilder().setId("s2").setEndTime(Timestamp.newBuilder().setSeconds(2)).build();
    Run retry = Run.newBuilder().setStartStepId("b").addStepRuns(newer).addStepRuns(older)
        .addStepRuns(failed.toBuilder().setId("s3").setEndTime(Timestamp.newBuilder().setSeconds(3))).build();
    assertEquals(List.of(new Plan.Start("b", newer)), Plan.starts(retry, wf));
  }
}
