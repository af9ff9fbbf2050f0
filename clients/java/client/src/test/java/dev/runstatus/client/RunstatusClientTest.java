package dev.runstatus.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.rpc.Code;
import com.google.rpc.ErrorInfo;
import dev.runstatus.v1.Classification;
import dev.runstatus.v1.ClassifierServiceGrpc;
import dev.runstatus.v1.ClassifyRequest;
import dev.runstatus.v1.ClassifyResponse;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.ErrorType;
import dev.runstatus.v1.RunStatus;
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
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The client against a fake ClassifierService of the test's own on a loopback port (no runstatus server). */
class RunstatusClientTest {
  private final AtomicReference<String> authorization = new AtomicReference<>();
  private final AtomicReference<Long> deadlineMillis = new AtomicReference<>();
  private Server server;
  private String address;

  /** Answers JobError, and refuses "Refuse" with FAILED_PRECONDITION and an ErrorInfo. */
  static final class FakeClassifier extends ClassifierServiceGrpc.ClassifierServiceImplBase {
    @Override
    public void classify(ClassifyRequest request, StreamObserver<ClassifyResponse> answer) {
      if (request.getError().getName().equals("Refuse")) {
        ErrorInfo info = ErrorInfo.newBuilder()
            .setReason("INVALID_TRANSITION")
            .setDomain("runstatus.dev")
            .putMetadata("current_status", "RUN_STATUS_CRASHED")
            .build();
        answer.onError(StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
            .setCode(Code.FAILED_PRECONDITION_VALUE)
            .setMessage("the run is CRASHED")
            .addDetails(Any.pack(info))
            .build()));
        return;
      }
      answer.onNext(ClassifyResponse.newBuilder().setClassification(Classification.newBuilder()
          .setStatus(RunStatus.RUN_STATUS_FAILED)
          .setErrorType(ErrorType.ERROR_TYPE_JOB_ERROR)
          .setRule("seed:JobError")).build());
      answer.onCompleted();
    }
  }

  @BeforeEach
  void start() throws Exception {
    ServerInterceptor recorder = new ServerInterceptor() {
      @Override
      public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
          ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
        authorization.set(headers.get(RunstatusClient.AUTHORIZATION));
        String timeout = headers.get(Metadata.Key.of("grpc-timeout", Metadata.ASCII_STRING_MARSHALLER));
        deadlineMillis.set(timeout == null ? null : parseTimeoutMillis(timeout));
        return next.startCall(call, headers);
      }
    };
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(ServerInterceptors.intercept(new FakeClassifier(), recorder))
        .build()
        .start();
    address = "127.0.0.1:" + server.getPort();
  }

  @AfterEach
  void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private static long parseTimeoutMillis(String timeout) {
    long value = Long.parseLong(timeout.substring(0, timeout.length() - 1));
    switch (timeout.charAt(timeout.length() - 1)) {
      case 'H': return TimeUnit.HOURS.toMillis(value);
      case 'M': return TimeUnit.MINUTES.toMillis(value);
      case 'S': return TimeUnit.SECONDS.toMillis(value);
      case 'm': return value;
      case 'u': return TimeUnit.MICROSECONDS.toMillis(value);
      default: return TimeUnit.NANOSECONDS.toMillis(value);
    }
  }

  private static ClassifyRequest classify(String name) {
    return ClassifyRequest.newBuilder().setError(ErrorReport.newBuilder().setName(name)).build();
  }

  @Test
  void sendsTheBearerTokenAndTheDefaultDeadline() {
    try (RunstatusClient client = RunstatusClient.builder(address)
        .bearerToken("s3cret")
        .defaultDeadline(Duration.ofSeconds(7))
        .build()) {
      Classification got = client.classifier().classify(classify("JobError")).getClassification();
      assertEquals(RunStatus.RUN_STATUS_FAILED, got.getStatus());
      assertEquals("seed:JobError", got.getRule());
      assertEquals("Bearer s3cret", authorization.get());
      long millis = deadlineMillis.get();
      assertTrue(millis > 5_000 && millis <= 7_000, "deadline " + millis + " ms");
    }
  }

  @Test
  void sendsNoTokenOrDeadlineUnlessAsked() {
    try (RunstatusClient client = RunstatusClient.connect(address)) {
      client.classifier().classify(classify("JobError"));
      assertNull(authorization.get());
      assertNull(deadlineMillis.get());
    }
  }

  @Test
  void readsTheErrorInfoOfAFailedCall() {
    try (RunstatusClient client = RunstatusClient.connect(address)) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
          () -> client.classifier().classify(classify("Refuse")));
      assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode());
      ErrorInfo info = ErrorDetails.errorInfo(e);
      assertEquals("INVALID_TRANSITION", info.getReason());
      assertEquals("RUN_STATUS_CRASHED", info.getMetadataMap().get("current_status"));
      assertEquals("INVALID_TRANSITION", ErrorDetails.reason(e));
      assertEquals("RUN_STATUS_CRASHED", ErrorDetails.metadata(e, "current_status").orElseThrow());
    }
  }

  @Test
  void aFailureWithoutDetailsHasTheEmptyErrorInfo() {
    StatusRuntimeException plain = Status.NOT_FOUND.withDescription("no such run").asRuntimeException();
    assertEquals(ErrorInfo.getDefaultInstance(), ErrorDetails.errorInfo(plain));
    assertFalse(ErrorDetails.findErrorInfo(plain).isPresent());
    assertFalse(ErrorDetails.metadata(plain, "current_status").isPresent());
  }

  @Test
  void loopbackAddressesArePlaintextByDefault() {
    assertTrue(RunstatusClient.isLoopback("127.0.0.1:50051"));
    assertTrue(RunstatusClient.isLoopback("localhost:50051"));
    assertTrue(RunstatusClient.isLoopback("[::1]:50051"));
    assertTrue(RunstatusClient.isLoopback("dns:///localhost:50051"));
    assertTrue(RunstatusClient.isLoopback("unix:/tmp/runstatus.sock"));
    assertFalse(RunstatusClient.isLoopback("runstatus.example.org:443"));
    assertFalse(RunstatusClient.isLoopback("10.0.0.7:50051"));
    assertFalse(RunstatusClient.isLoopback("dns:///runstatus.example.org:443"));
  }
}
