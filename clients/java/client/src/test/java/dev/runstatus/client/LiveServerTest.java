package dev.runstatus.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.protobuf.FieldMask;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.rpc.BadRequest;
import dev.runstatus.v1.CancelRunRequest;
import dev.runstatus.v1.ClassifyRequest;
import dev.runstatus.v1.CreateProjectRequest;
import dev.runstatus.v1.CreateWorkOrderRequest;
import dev.runstatus.v1.CreateWorkOrderResponse;
import dev.runstatus.v1.CreateWorkflowRequest;
import dev.runstatus.v1.Edge;
import dev.runstatus.v1.EdgeCondition;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.ErrorSeverity;
import dev.runstatus.v1.Event;
import dev.runstatus.v1.EventType;
import dev.runstatus.v1.GetCallerTokenRequest;
import dev.runstatus.v1.GetRunRequest;
import dev.runstatus.v1.GetWorkOrderRequest;
import dev.runstatus.v1.ListNotificationSubscriptionsRequest;
import dev.runstatus.v1.ListWorkOrdersRequest;
import dev.runstatus.v1.Project;
import dev.runstatus.v1.RetentionPolicy;
import dev.runstatus.v1.Run;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.StatusRetention;
import dev.runstatus.v1.Step;
import dev.runstatus.v1.StepRun;
import dev.runstatus.v1.UpdateProjectRequest;
import dev.runstatus.v1.WatchWorkOrdersRequest;
import dev.runstatus.v1.WatchWorkOrdersResponse;
import dev.runstatus.v1.WorkOrder;
import dev.runstatus.v1.Workflow;
import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.HandlerRegistry;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerMethodDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * The client against a real runstatus server on a real port (tests/test_client_java.py starts it
 * and runs these with -Drunstatus.address=HOST:PORT); skipped without an address. With
 * -Drunstatus.control=DIR the watch test asks the harness to restart the server (it writes
 * DIR/restart, the harness answers DIR/restarted); with -Drunstatus.authAddress and
 * -Drunstatus.token the async stubs are tried against a server with --auth.
 */
@EnabledIfSystemProperty(named = "runstatus.address", matches = ".+")
class LiveServerTest {
  private static final Duration WAIT = Duration.ofSeconds(60);
  private RunstatusClient client;
  private String projectId;

  @BeforeEach
  void connect() {
    client = RunstatusClient.builder(System.getProperty("runstatus.address"))
        .defaultDeadline(Duration.ofSeconds(30))
        .build();
    projectId = "java-" + UUID.randomUUID().toString().substring(0, 8);
    client.projects().createProject(CreateProjectRequest.newBuilder()
        .setProject(Project.newBuilder().setId(projectId)).build());
  }

  @AfterEach
  void close() {
    client.close();
  }

  private Workflow workflow(List<String> steps, List<Edge> edges) {
    Workflow.Builder workflow = Workflow.newBuilder()
        .setId("wf-" + UUID.randomUUID().toString().substring(0, 8)).setProjectId(projectId);
    steps.forEach(s -> workflow.addSteps(Step.newBuilder().setId(s)));
    workflow.addAllEdges(edges);
    return client.workflows().createWorkflow(CreateWorkflowRequest.newBuilder().setWorkflow(workflow).build())
        .getWorkflow();
  }

  private static Edge edge(String from, String to, EdgeCondition condition) {
    return Edge.newBuilder().setSourceStepId(from).setTargetStepId(to).setCondition(condition).build();
  }

  private CreateWorkOrderResponse order(Workflow workflow) {
    return client.workOrders().createWorkOrder(CreateWorkOrderRequest.newBuilder()
        .setProjectId(projectId).setWorkflowId(workflow.getId())
        .setInput(Struct.newBuilder().putFields("patient", number(123))).build());
  }

  private static Value number(double n) {
    return Value.newBuilder().setNumberValue(n).build();
  }

  private Run run(String runId) {
    return client.workOrders().getRun(GetRunRequest.newBuilder().setRunId(runId).build()).getRun();
  }

  @Test
  void aWorkerRunsAWorkflowToSuccess() {
    Workflow wf = workflow(List.of("fetch", "check", "notify", "skipped"), List.of(
        edge("fetch", "check", EdgeCondition.EDGE_CONDITION_ON_SUCCESS),
        Edge.newBuilder().setSourceStepId("check").setTargetStepId("notify")
            .setCondition(EdgeCondition.EDGE_CONDITION_EXPRESSION).setExpression("state.ok").build(),
        edge("check", "skipped", EdgeCondition.EDGE_CONDITION_ON_FAILURE)));
    CreateWorkOrderResponse created = order(wf);
    List<Double> seen = Collections.synchronizedList(new ArrayList<>());
    Worker worker = new Worker(client, "java-test", projectId)
        .step("fetch", ctx -> ctx.state().toBuilder().putFields("fetched", number(1)).build())
        .step("check", ctx -> {
          seen.add(ctx.state().getFieldsOrThrow("patient").getNumberValue());
          return ctx.state().toBuilder().putFields("ok", Value.newBuilder().setBoolValue(true).build()).build();
        })
        .step("notify", ctx -> null)
        .condition("state.ok", state -> state.getFieldsOrDefault("ok", Value.getDefaultInstance()).getBoolValue());

    List<Worker.RunOutcome> outcomes = worker.runUntilIdle();
    assertEquals(1, outcomes.size());
    Worker.RunOutcome outcome = outcomes.get(0);
    assertEquals(created.getRun().getId(), outcome.runId());
    assertEquals(RunStatus.RUN_STATUS_SUCCESS, outcome.status());
    assertEquals(List.of("fetch", "check", "notify"), outcome.executed());
    assertEquals(List.of(123.0), seen);
    Run run = run(outcome.runId());
    assertEquals(RunStatus.RUN_STATUS_SUCCESS, run.getStatus());
    StepRun fetch = run.getStepRunsList().stream().filter(s -> s.getStepId().equals("fetch")).findFirst().orElseThrow();
    assertEquals(1.0, fetch.getOutput().getFieldsOrThrow("fetched").getNumberValue());
    assertTrue(worker.runOnce().isEmpty(), "nothing left to claim");
  }

  /** A wrapper error as OpenFn's runtime throws them: it names what it wraps and how bad it is. */
  static final class RuntimeCrash extends StepError {
    private static final long serialVersionUID = 1L;

    RuntimeCrash(String message) {
      super(message, "ReferenceError", ErrorSeverity.ERROR_SEVERITY_CRASH);
    }
  }

  @Test
  void aFailingStepIsReportedWithItsNameSubtypeAndSeverity() {
    for (Exception thrown : List.<Exception>of(new RuntimeCrash("x is not defined"),
        new NullPointerException("no patient"),
        // OpenFn's engine re-tags an uncaught error in job code: its crash beats the alias's EXCEPTION.
        StepError.of("ExecutionError", "thrown from a timer", "", "crash"))) {
      String name = thrown instanceof ReportedError reported && !reported.reportedName().isEmpty()
          ? reported.reportedName() : thrown.getClass().getSimpleName();
      // b handles a's failure, and fails too (a leaf that succeeded would make the run SUCCESS).
      Workflow wf = workflow(List.of("a", "b"), List.of(edge("a", "b", EdgeCondition.EDGE_CONDITION_ON_FAILURE)));
      order(wf);
      Worker worker = new Worker(client, "java-test", projectId)
          .step("a", ctx -> {
            throw thrown;
          })
          .step("b", ctx -> {
            assertEquals(name,
                ctx.state().getFieldsOrThrow("error").getStructValue().getFieldsOrThrow("name").getStringValue());
            throw new NullPointerException("still no patient");
          });
      Worker.RunOutcome outcome = worker.runOnce().get(0);
      Run run = run(outcome.runId());
      StepRun a = run.getStepRunsList().stream().filter(s -> s.getStepId().equals("a")).findFirst().orElseThrow();
      ErrorReport report = a.getError().getReport();
      assertEquals(name, report.getName());
      assertEquals(thrown.getMessage(), report.getMessage());
      assertEquals("java", report.getLanguage());
      assertTrue(report.getStack().contains("LiveServerTest"), report.getStack());
      RunStatus classified = client.classifier().classify(ClassifyRequest.newBuilder().setError(report).build())
          .getClassification().getStatus();
      if (thrown instanceof RuntimeCrash) {
        assertEquals("ReferenceError", report.getSubtype());
        assertEquals(ErrorSeverity.ERROR_SEVERITY_CRASH, report.getSeverity());
        assertEquals(RunStatus.RUN_STATUS_CRASHED, classified);
        assertEquals(List.of("a"), outcome.executed(), "a crash ends the run at once");
      } else if (thrown instanceof StepError) {
        assertEquals("", report.getSubtype());
        assertEquals(ErrorSeverity.ERROR_SEVERITY_CRASH, report.getSeverity());
        assertEquals("severity:crash;over:alias:ExecutionError", a.getError().getClassification().getRule());
        assertEquals(RunStatus.RUN_STATUS_CRASHED, classified);
        assertEquals(List.of("a"), outcome.executed(), "a crash ends the run at once");
      } else {
        assertEquals("", report.getSubtype());
        assertEquals(RunStatus.RUN_STATUS_FAILED, classified);
        assertEquals(List.of("a", "b"), outcome.executed(), "a failure goes on along ON_FAILURE");
      }
      assertEquals(classified, outcome.status());
      assertEquals(classified, run.getStatus());
    }
  }

  @Test
  void aCancelStopsTheHeartbeatAndInterruptsTheRunningStep() throws Exception {
    Workflow wf = workflow(List.of("slow", "after"), List.of(edge("slow", "after", EdgeCondition.EDGE_CONDITION_ALWAYS)));
    CreateWorkOrderResponse created = order(wf);
    CountDownLatch started = new CountDownLatch(1);
    AtomicBoolean interrupted = new AtomicBoolean();
    AtomicBoolean stopRequested = new AtomicBoolean();
    AtomicBoolean afterRan = new AtomicBoolean();
    Worker worker = new Worker(client, "java-test", projectId)
        .step("slow", ctx -> {
          started.countDown();
          try {
            Thread.sleep(120_000);
          } catch (InterruptedException e) {
            interrupted.set(true);
            stopRequested.set(ctx.stopRequested());
            throw e;
          }
          return null;
        })
        .step("after", ctx -> {
          afterRan.set(true);
          return null;
        });
    ExecutorService pool = Executors.newSingleThreadExecutor();
    try {
      long begin = System.nanoTime();
      Callable<List<Worker.RunOutcome>> task = worker::runOnce;
      var outcome = pool.submit(task);
      assertTrue(started.await(30, TimeUnit.SECONDS), "the step never started");
      client.workOrders().cancelRun(CancelRunRequest.newBuilder().setRunId(created.getRun().getId())
          .setReason("test").build());
      List<Worker.RunOutcome> outcomes = outcome.get(60, TimeUnit.SECONDS);
      assertTrue(System.nanoTime() - begin < TimeUnit.SECONDS.toNanos(60), "the step was not cut short");
      assertEquals(RunStatus.RUN_STATUS_CANCELLED, outcomes.get(0).status());
      assertTrue(interrupted.get(), "the step's thread was interrupted");
      assertTrue(stopRequested.get(), "the step saw stopRequested()");
      assertFalse(afterRan.get(), "no step after a stop");
      assertEquals(RunStatus.RUN_STATUS_CANCELLED, run(created.getRun().getId()).getStatus());
    } finally {
      pool.shutdownNow();
    }
  }

  /** Reads the watch until the predicate holds on what it read, within WAIT. */
  private static List<Event> readUntil(WorkOrderWatch watch, List<Event> into, Predicate<List<Event>> done)
      throws Exception {
    CompletableFuture<Void> reading = CompletableFuture.runAsync(() -> {
      while (!done.test(into) && watch.hasNext()) {
        WatchWorkOrdersResponse item = watch.next();
        into.add(item.getEvent());
      }
    });
    try {
      reading.get(WAIT.toSeconds(), TimeUnit.SECONDS);
    } catch (TimeoutException e) {
      watch.close();
      throw new AssertionError("read only " + into.size() + " events: " + into, e);
    }
    return into;
  }

  private static long created(List<Event> events) {
    return events.stream().filter(e -> e.getType() == EventType.EVENT_TYPE_WORK_ORDER_CREATED).count();
  }

  @Test
  void theWatchResumesAcrossAServerRestartWithNoEventLostOrRepeated() throws Exception {
    String control = System.getProperty("runstatus.control", "");
    assumeTrue(!control.isEmpty(), "needs -Drunstatus.control (the harness restarts the server)");
    Workflow wf = workflow(List.of("a"), List.of());
    WatchWorkOrdersRequest request = WatchWorkOrdersRequest.newBuilder().setProjectId(projectId).build();
    List<Event> events = Collections.synchronizedList(new ArrayList<>());
    try (WorkOrderWatch watch = client.watch(request)) {
      for (int i = 0; i < 3; i++) {
        order(wf);
      }
      readUntil(watch, events, got -> created(got) >= 3);

      Path dir = Path.of(control);
      Files.writeString(dir.resolve("restart"), "please");
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
      while (!Files.exists(dir.resolve("restarted"))) {
        assertTrue(System.nanoTime() < deadline, "the harness never restarted the server");
        Thread.sleep(50);
      }
      // The client reconnects within a second of the server's return; the retries of a call
      // cover about that long, so wait for it here rather than race it.
      while (client.channel().getState(true) != io.grpc.ConnectivityState.READY) {
        assertTrue(System.nanoTime() < deadline, "the client never reconnected");
        Thread.sleep(50);
      }
      for (int i = 0; i < 3; i++) {
        order(wf);
      }
      readUntil(watch, events, got -> created(got) >= 6);
      assertTrue(watch.reconnects() >= 1, "the watch never broke: was the server restarted?");
    }
    List<Long> sequences = events.stream().map(Event::getSequence).toList();
    assertEquals(new HashSet<>(sequences).size(), sequences.size(), "an event repeated: " + sequences);

    // Everything the log holds for the project, read afresh: the same events, in the same order.
    List<Event> fresh = Collections.synchronizedList(new ArrayList<>());
    try (WorkOrderWatch again = client.watch(request)) {
      readUntil(again, fresh, got -> got.size() >= events.size());
    }
    assertEquals(sequences, fresh.stream().map(Event::getSequence).toList());
    assertEquals(6, created(events));
  }

  /** The first n answers of a watch, within WAIT; the watch stays open for the caller to close. */
  private static List<WatchWorkOrdersResponse> take(WorkOrderWatch watch, int n) throws Exception {
    List<WatchWorkOrdersResponse> got = Collections.synchronizedList(new ArrayList<>());
    CompletableFuture<Void> reading = CompletableFuture.runAsync(() -> {
      while (got.size() < n && watch.hasNext()) {
        got.add(watch.next());
      }
    });
    try {
      reading.get(WAIT.toSeconds(), TimeUnit.SECONDS);
    } catch (TimeoutException e) {
      watch.close();
      throw new AssertionError("read only " + got.size() + " answers: " + got, e);
    }
    return got;
  }

  private List<WatchWorkOrdersResponse> take(WatchWorkOrdersRequest request, int n) throws Exception {
    try (WorkOrderWatch watch = client.watch(request)) {
      return take(watch, n);
    }
  }

  @Test
  void aBatchedWatchHandsOutTheSameEventsAndCursorsAndResumesMidBatch() throws Exception {
    Workflow wf = workflow(List.of("a"), List.of());
    for (int i = 0; i < 7; i++) {
      order(wf);
    }
    WatchWorkOrdersRequest plain = WatchWorkOrdersRequest.newBuilder().setProjectId(projectId).build();
    WatchWorkOrdersRequest batched =
        plain.toBuilder().setBatching(WorkOrderWatch.batching(3, Duration.ofMillis(50))).build();
    List<WatchWorkOrdersResponse> want = take(plain, 7);
    assertEquals(7, want.size());
    for (WatchWorkOrdersResponse item : want) {
      assertEquals(Long.toString(item.getEvent().getSequence()), item.getCursor());
    }
    // Each answer an event and its cursor, as the unbatched watch's (equal messages: no `events`).
    assertEquals(want, take(batched, 7));

    // The server did send them three to a message.
    Context.CancellableContext raw = Context.current().withCancellation();
    try {
      WatchWorkOrdersResponse first = raw.call(() -> {
        Iterator<WatchWorkOrdersResponse> stream = client.workOrders().watchWorkOrders(batched);
        return stream.next();
      });
      assertEquals(3, first.getEventsCount(), first.toString());
      assertFalse(first.hasEvent());
      assertEquals(want.get(2).getCursor(), first.getCursor());
    } finally {
      raw.cancel(null);
    }

    // Stopped after the second batch's middle event: its cursor resumes with the rest.
    List<WatchWorkOrdersResponse> stopped;
    try (WorkOrderWatch watch = client.watch(batched)) {
      stopped = take(watch, 5);
      assertEquals(want.get(4).getCursor(), watch.cursor());
    }
    assertEquals(want.subList(0, 5), stopped);
    assertEquals(want.subList(5, 7), take(batched.toBuilder().setAfterCursor(stopped.get(4).getCursor()).build(), 2));
  }

  /** A byte-for-byte gRPC proxy that answers the first CreateWorkOrder UNAVAILABLE after the server did it. */
  static final class FlakyProxy implements AutoCloseable {
    static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
      @Override
      public InputStream stream(byte[] value) {
        return new ByteArrayInputStream(value);
      }

      @Override
      public byte[] parse(InputStream stream) {
        try {
          return stream.readAllBytes();
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }
    };

    final List<byte[]> creates = Collections.synchronizedList(new ArrayList<>());
    final AtomicInteger failuresLeft = new AtomicInteger(1);
    final ManagedChannel backend;
    final Server server;

    FlakyProxy(String target) throws IOException {
      backend = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
      server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
          .fallbackHandlerRegistry(new HandlerRegistry() {
            @Override
            public ServerMethodDefinition<?, ?> lookupMethod(String name, String authority) {
              MethodDescriptor<byte[], byte[]> method = MethodDescriptor.newBuilder(BYTES, BYTES)
                  .setFullMethodName(name).setType(MethodDescriptor.MethodType.UNARY).build();
              return ServerMethodDefinition.create(method, ServerCalls.asyncUnaryCall(
                  (byte[] request, StreamObserver<byte[]> answer) -> forward(method, request, answer)));
            }
          })
          .build()
          .start();
    }

    String address() {
      return "127.0.0.1:" + server.getPort();
    }

    private void forward(MethodDescriptor<byte[], byte[]> method, byte[] request, StreamObserver<byte[]> answer) {
      byte[] reply;
      try {
        reply = ClientCalls.blockingUnaryCall(backend, method, CallOptions.DEFAULT, request);
      } catch (StatusRuntimeException e) {
        answer.onError(e);
        return;
      }
      if (method.getFullMethodName().endsWith("/CreateWorkOrder")) {
        creates.add(request);
        if (failuresLeft.getAndDecrement() > 0) {
          // The server did it; its answer is lost on the way, as in a connection cut at that moment.
          answer.onError(Status.UNAVAILABLE.withDescription("the proxy dropped the answer").asRuntimeException());
          return;
        }
      }
      answer.onNext(reply);
      answer.onCompleted();
    }

    @Override
    public void close() throws InterruptedException {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      backend.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  @Test
  void aMutatingCallRetriedAfterUnavailableIsDoneOnce() throws Exception {
    Workflow wf = workflow(List.of("a"), List.of());
    try (FlakyProxy proxy = new FlakyProxy(System.getProperty("runstatus.address"));
         RunstatusClient flaky = RunstatusClient.connect(proxy.address())) {
      CreateWorkOrderRequest request = CreateWorkOrderRequest.newBuilder()
          .setProjectId(projectId).setWorkflowId(wf.getId()).build();
      CreateWorkOrderResponse answer = flaky.workOrders().createWorkOrder(request);
      assertEquals("", request.getRequestId(), "the caller's message is left as it was");

      assertEquals(2, proxy.creates.size(), "one attempt, then one retry");
      CreateWorkOrderRequest first = CreateWorkOrderRequest.parseFrom(proxy.creates.get(0));
      CreateWorkOrderRequest second = CreateWorkOrderRequest.parseFrom(proxy.creates.get(1));
      assertFalse(first.getRequestId().isEmpty(), "a request id was filled in");
      assertEquals(first.getRequestId(), second.getRequestId(), "the retry carries the same id");

      List<WorkOrder> orders = client.workOrders().listWorkOrders(ListWorkOrdersRequest.newBuilder()
          .setProjectId(projectId).build()).getWorkOrdersList();
      assertEquals(1, orders.size(), "done once: " + orders);
      assertEquals(answer.getWorkOrder().getId(), orders.get(0).getId());

      // A new call of the same message is a new request.
      flaky.workOrders().createWorkOrder(request);
      CreateWorkOrderRequest third = CreateWorkOrderRequest.parseFrom(proxy.creates.get(2));
      assertNotEquals(first.getRequestId(), third.getRequestId());
    }
  }

  @Test
  void aWatchAfterAPrunedCursorThrowsCursorExpired() throws InterruptedException {
    String address = System.getProperty("runstatus.pruningAddress", "");
    assumeTrue(!address.isEmpty(), "needs -Drunstatus.pruningAddress (a server with --request-id-seconds 1)");
    try (RunstatusClient pruning = RunstatusClient.connect(address)) {
      String project = "java-live-" + UUID.randomUUID().toString().substring(0, 8);
      pruning.projects().createProject(CreateProjectRequest.newBuilder()
          .setProject(Project.newBuilder().setId(project)).build());
      // Cancelled work orders kept a second: the server allows it as its request ids are kept a second.
      pruning.projects().updateProject(UpdateProjectRequest.newBuilder()
          .setProject(Project.newBuilder().setId(project).setRetention(RetentionPolicy.newBuilder()
              .addStatuses(StatusRetention.newBuilder().setStatus(RunStatus.RUN_STATUS_CANCELLED)
                  .setKeep(com.google.protobuf.Duration.newBuilder().setSeconds(1)))))
          .setUpdateMask(FieldMask.newBuilder().addPaths("retention")).build());
      pruning.workflows().createWorkflow(CreateWorkflowRequest.newBuilder().setWorkflow(Workflow.newBuilder()
          .setId("wf").setProjectId(project).addSteps(Step.newBuilder().setId("a"))).build());
      CreateWorkOrderResponse created = pruning.workOrders().createWorkOrder(CreateWorkOrderRequest.newBuilder()
          .setProjectId(project).setWorkflowId("wf").build());
      pruning.workOrders().cancelRun(CancelRunRequest.newBuilder().setRunId(created.getRun().getId())
          .setReason("to be pruned").build());
      String old;
      try (WorkOrderWatch watch = pruning.watch(WatchWorkOrdersRequest.newBuilder().setProjectId(project).build())) {
        old = watch.next().getCursor();
      }
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (true) {
        try {
          pruning.workOrders().getWorkOrder(GetWorkOrderRequest.newBuilder()
              .setWorkOrderId(created.getWorkOrder().getId()).build());
        } catch (StatusRuntimeException e) {
          assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
          break;
        }
        assertTrue(System.nanoTime() < deadline, "the cancelled work order was not pruned");
        Thread.sleep(100);
      }
      try (WorkOrderWatch watch = pruning.watch(WatchWorkOrdersRequest.newBuilder()
               .setProjectId(project).setAfterCursor(old).build())) {
        CursorExpiredException expired = assertThrows(CursorExpiredException.class, watch::hasNext);
        assertFalse(expired.oldestCursor().isEmpty());
      }
    }
  }

  @Test
  void fieldViolationsNameEveryWrongField() {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () ->
        client.workOrders().createWorkOrder(CreateWorkOrderRequest.newBuilder()
            .setProjectId(projectId).setWorkflowId("w").setWorkflowVersion(-1).setPriority(1_000_000_000).build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    List<String> fields = ErrorDetails.fieldViolations(e).stream().map(BadRequest.FieldViolation::getField).toList();
    assertEquals(Set.of("workflow_version", "priority"), Set.copyOf(fields), fields.toString());
    ErrorDetails.fieldViolations(e).forEach(v -> assertFalse(v.getDescription().isEmpty()));
    assertTrue(ErrorDetails.fieldViolations(Status.NOT_FOUND.asRuntimeException()).isEmpty());
  }

  @Test
  void asyncAndFutureStubsSendTheTokenUnderAuth() throws Exception {
    String address = System.getProperty("runstatus.authAddress", "");
    String token = System.getProperty("runstatus.token", "");
    assumeTrue(!address.isEmpty() && !token.isEmpty(), "needs -Drunstatus.authAddress and -Drunstatus.token");
    try (RunstatusClient authed = RunstatusClient.builder(address).bearerToken(token)
             .defaultDeadline(Duration.ofSeconds(30)).build();
         RunstatusClient anonymous = RunstatusClient.connect(address)) {
      // Future stub.
      var classified = authed.classifierFuture().classify(ClassifyRequest.newBuilder()
          .setError(ErrorReport.newBuilder().setName("TypeError")).build()).get(30, TimeUnit.SECONDS);
      assertEquals(RunStatus.RUN_STATUS_FAILED, classified.getClassification().getStatus());
      // Tokens: who am I.
      assertFalse(authed.tokens().getCallerToken(GetCallerTokenRequest.getDefaultInstance()).getToken().getId().isEmpty());
      assertFalse(authed.tokensFuture().getCallerToken(GetCallerTokenRequest.getDefaultInstance())
          .get(30, TimeUnit.SECONDS).getToken().getId().isEmpty());
      // Without the token: refused, so the above did carry it.
      StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () ->
          anonymous.tokens().getCallerToken(GetCallerTokenRequest.getDefaultInstance()));
      assertEquals(Status.Code.UNAUTHENTICATED, refused.getStatus().getCode());

      // The streaming async stub: a watch gets the event of a work order created after it opened,
      // with no deadline (the client's default of 30 s does not apply to it).
      String project = "java-auth-" + UUID.randomUUID().toString().substring(0, 8);
      authed.projects().createProject(CreateProjectRequest.newBuilder().setProject(Project.newBuilder().setId(project)).build());
      authed.workflows().createWorkflow(CreateWorkflowRequest.newBuilder().setWorkflow(Workflow.newBuilder()
          .setId("w").setProjectId(project).addSteps(Step.newBuilder().setId("a"))).build());
      LinkedBlockingQueue<Object> got = new LinkedBlockingQueue<>();
      io.grpc.Context.CancellableContext watching = io.grpc.Context.current().withCancellation();
      watching.run(() -> authed.workOrdersAsync().watchWorkOrders(
          WatchWorkOrdersRequest.newBuilder().setProjectId(project).build(), new StreamObserver<>() {
            @Override
            public void onNext(WatchWorkOrdersResponse value) {
              got.add(value);
            }

            @Override
            public void onError(Throwable t) {
              got.add(t);
            }

            @Override
            public void onCompleted() {
              got.add("completed");
            }
          }));
      try {
        authed.workOrdersAsync().createWorkOrder(CreateWorkOrderRequest.newBuilder()
            .setProjectId(project).setWorkflowId("w").build(), new StreamObserver<>() {
              @Override
              public void onNext(CreateWorkOrderResponse value) {}

              @Override
              public void onError(Throwable t) {
                got.add(t);
              }

              @Override
              public void onCompleted() {}
            });
        Object first = got.poll(30, TimeUnit.SECONDS);
        assertTrue(first instanceof WatchWorkOrdersResponse, "the watch said " + first);
        assertEquals(project, ((WatchWorkOrdersResponse) first).getEvent().getProjectId());
      } finally {
        watching.cancel(null);
      }

      // NotificationService is answered with the token (an admin's), never UNAUTHENTICATED.
      authed.notifications().listNotificationSubscriptions(ListNotificationSubscriptionsRequest.getDefaultInstance());
    }
  }

  @Test
  void tokensAndNotificationsAreReachable() {
    // Without --auth GetCallerToken answers with no token; the call reaching the server is the point.
    client.tokens().getCallerToken(GetCallerTokenRequest.getDefaultInstance());
    client.notifications().listNotificationSubscriptions(ListNotificationSubscriptionsRequest.getDefaultInstance());
  }
}
