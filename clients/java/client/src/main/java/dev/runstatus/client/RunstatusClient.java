package dev.runstatus.client;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import dev.runstatus.v1.ClassifierServiceGrpc;
import dev.runstatus.v1.NotificationServiceGrpc;
import dev.runstatus.v1.ProjectServiceGrpc;
import dev.runstatus.v1.StatsServiceGrpc;
import dev.runstatus.v1.TokenServiceGrpc;
import dev.runstatus.v1.WatchWorkOrdersRequest;
import dev.runstatus.v1.WorkOrderServiceGrpc;
import dev.runstatus.v1.WorkerServiceGrpc;
import dev.runstatus.v1.WorkflowServiceGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ConnectivityState;
import io.grpc.ForwardingClientCall.SimpleForwardingClientCall;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.TlsChannelCredentials;
import io.opentelemetry.api.OpenTelemetry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Pattern;

/**
 * A client of a runstatus server: one channel, and a blocking, an async and a future stub for each
 * of its seven services, all through the same interceptors (bearer token, default deadline, request
 * ids).
 *
 * <pre>{@code
 * try (RunstatusClient client = RunstatusClient.builder("127.0.0.1:50051").bearerToken(token).build()) {
 *   client.workOrders().getWorkOrder(GetWorkOrderRequest.newBuilder().setWorkOrderId(id).build());
 * }
 * }</pre>
 *
 * <p>The address is a gRPC target ("host:port", "dns:///host:port", "unix:/path"). Unless told
 * otherwise the channel is plaintext for a loopback address (localhost, 127.0.0.0/8, ::1, a unix
 * socket) and TLS with the system's trusted roots for any other.
 *
 * <p>Safe defaults, as in the other clients: every call is retried on UNAVAILABLE (up to 5
 * attempts, 0.1 to 2 s apart, a gRPC service config), and every mutating request whose
 * {@code request_id} is empty gets a new one ({@link RequestIdInterceptor}), so the server does a
 * retried request once. A default deadline, if set, applies to unary calls only: a watch is meant
 * to stay open. {@link #watch} gives a watch that resumes from its cursor after a disconnect.
 *
 * <p>Given an OpenTelemetry instance ({@link Builder#openTelemetry}), every call is traced by
 * OpenTelemetry's gRPC instrumentation and carries the W3C {@code traceparent} of its span, a child
 * of the current span, so the server's span of the call (a server started with {@code --otel})
 * is in the caller's trace; a {@link Worker} on the client makes a span per run and per step.
 */
public final class RunstatusClient implements AutoCloseable {
  /** The {@code authorization} request header. */
  public static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  /** The services the default retry policy covers: every one of the contract's. */
  static final List<String> SERVICES = List.of(
      "ClassifierService", "WorkflowService", "ProjectService", "WorkOrderService", "WorkerService",
      "TokenService", "NotificationService", "StatsService");

  /** While the channel cannot connect, it tries again at least this often (grpc-java waits up to 2 minutes). */
  static final long RECONNECT_MILLIS = 1000;
  private static final ScheduledExecutorService RECONNECTS = Executors.newSingleThreadScheduledExecutor(task -> {
    Thread thread = new Thread(task, "runstatus-reconnect");
    thread.setDaemon(true);
    return thread;
  });

  private final ManagedChannel channel;
  private final Channel intercepted;
  private final AtomicBoolean reconnecting = new AtomicBoolean();
  private final ClassifierServiceGrpc.ClassifierServiceBlockingStub classifier;
  private final WorkflowServiceGrpc.WorkflowServiceBlockingStub workflows;
  private final ProjectServiceGrpc.ProjectServiceBlockingStub projects;
  private final WorkOrderServiceGrpc.WorkOrderServiceBlockingStub workOrders;
  private final WorkerServiceGrpc.WorkerServiceBlockingStub worker;
  private final TokenServiceGrpc.TokenServiceBlockingStub tokens;
  private final NotificationServiceGrpc.NotificationServiceBlockingStub notifications;
  private final StatsServiceGrpc.StatsServiceBlockingStub stats;
  // Null unless tracing: only then is an OpenTelemetry class loaded (the dependency is optional).
  private final OpenTelemetry openTelemetry;

  private RunstatusClient(ManagedChannel channel, List<ClientInterceptor> interceptors, OpenTelemetry openTelemetry) {
    this.channel = channel;
    this.openTelemetry = openTelemetry;
    this.intercepted = ClientInterceptors.intercept(channel, interceptors);
    this.classifier = ClassifierServiceGrpc.newBlockingStub(intercepted);
    this.workflows = WorkflowServiceGrpc.newBlockingStub(intercepted);
    this.projects = ProjectServiceGrpc.newBlockingStub(intercepted);
    this.workOrders = WorkOrderServiceGrpc.newBlockingStub(intercepted);
    this.worker = WorkerServiceGrpc.newBlockingStub(intercepted);
    this.tokens = TokenServiceGrpc.newBlockingStub(intercepted);
    this.notifications = NotificationServiceGrpc.newBlockingStub(intercepted);
    this.stats = StatsServiceGrpc.newBlockingStub(intercepted);
    onStateChange(channel.getState(false));
  }

  /**
   * After a server restart, reconnect within a second rather than at the end of grpc-java's
   * connect backoff (up to two minutes, with no public setting): while the channel is in
   * TRANSIENT_FAILURE its backoff is reset every {@link #RECONNECT_MILLIS}, so the retries of
   * UNAVAILABLE find the server again. The Go and Python clients cap their backoff likewise.
   */
  private void onStateChange(ConnectivityState seen) {
    channel.notifyWhenStateChanged(seen, () -> {
      ConnectivityState now = channel.getState(false);
      if (now == ConnectivityState.SHUTDOWN) {
        return;
      }
      if (now == ConnectivityState.TRANSIENT_FAILURE && reconnecting.compareAndSet(false, true)) {
        RECONNECTS.schedule(this::reconnectWhileFailing, RECONNECT_MILLIS, TimeUnit.MILLISECONDS);
      }
      onStateChange(now);
    });
  }

  private void reconnectWhileFailing() {
    // round_robin keeps the channel in TRANSIENT_FAILURE while it retries: check again until it is not.
    if (channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
      channel.resetConnectBackoff();
      RECONNECTS.schedule(this::reconnectWhileFailing, RECONNECT_MILLIS, TimeUnit.MILLISECONDS);
    } else {
      reconnecting.set(false);
    }
  }

  /**
   * A client of the server at this address, with the defaults (no token, no deadline, retries).
   *
   * @param address a gRPC target, e.g. "127.0.0.1:50051"
   * @return the client; close it when done
   */
  public static RunstatusClient connect(String address) {
    return builder(address).build();
  }

  /**
   * A builder of a client of the server at this address.
   *
   * @param address a gRPC target, e.g. "127.0.0.1:50051"
   * @return the builder
   */
  public static Builder builder(String address) {
    return new Builder(address);
  }

  /** @return the blocking stub of ClassifierService */
  public ClassifierServiceGrpc.ClassifierServiceBlockingStub classifier() {
    return classifier;
  }

  /** @return the blocking stub of WorkflowService */
  public WorkflowServiceGrpc.WorkflowServiceBlockingStub workflows() {
    return workflows;
  }

  /** @return the blocking stub of ProjectService */
  public ProjectServiceGrpc.ProjectServiceBlockingStub projects() {
    return projects;
  }

  /** @return the blocking stub of WorkOrderService (for a watch that resumes, see {@link #watch}) */
  public WorkOrderServiceGrpc.WorkOrderServiceBlockingStub workOrders() {
    return workOrders;
  }

  /** @return the blocking stub of WorkerService (for a worker, see {@link Worker} and {@link Lease}) */
  public WorkerServiceGrpc.WorkerServiceBlockingStub worker() {
    return worker;
  }

  /** @return the blocking stub of TokenService */
  public TokenServiceGrpc.TokenServiceBlockingStub tokens() {
    return tokens;
  }

  /** @return the blocking stub of NotificationService */
  public NotificationServiceGrpc.NotificationServiceBlockingStub notifications() {
    return notifications;
  }

  /** @return the blocking stub of StatsService (a project's work orders over a window of time) */
  public StatsServiceGrpc.StatsServiceBlockingStub stats() {
    return stats;
  }

  /** @return the async (StreamObserver) stub of ClassifierService */
  public ClassifierServiceGrpc.ClassifierServiceStub classifierAsync() {
    return ClassifierServiceGrpc.newStub(intercepted);
  }

  /** @return the async (StreamObserver) stub of WorkflowService */
  public WorkflowServiceGrpc.WorkflowServiceStub workflowsAsync() {
    return WorkflowServiceGrpc.newStub(intercepted);
  }

  /** @return the async (StreamObserver) stub of ProjectService */
  public ProjectServiceGrpc.ProjectServiceStub projectsAsync() {
    return ProjectServiceGrpc.newStub(intercepted);
  }

  /** @return the async (StreamObserver) stub of WorkOrderService, WatchWorkOrders among its calls */
  public WorkOrderServiceGrpc.WorkOrderServiceStub workOrdersAsync() {
    return WorkOrderServiceGrpc.newStub(intercepted);
  }

  /** @return the async (StreamObserver) stub of WorkerService */
  public WorkerServiceGrpc.WorkerServiceStub workerAsync() {
    return WorkerServiceGrpc.newStub(intercepted);
  }

  /** @return the async (StreamObserver) stub of TokenService */
  public TokenServiceGrpc.TokenServiceStub tokensAsync() {
    return TokenServiceGrpc.newStub(intercepted);
  }

  /** @return the async (StreamObserver) stub of NotificationService */
  public NotificationServiceGrpc.NotificationServiceStub notificationsAsync() {
    return NotificationServiceGrpc.newStub(intercepted);
  }

  /** @return the async (StreamObserver) stub of StatsService */
  public StatsServiceGrpc.StatsServiceStub statsAsync() {
    return StatsServiceGrpc.newStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of ClassifierService */
  public ClassifierServiceGrpc.ClassifierServiceFutureStub classifierFuture() {
    return ClassifierServiceGrpc.newFutureStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of WorkflowService */
  public WorkflowServiceGrpc.WorkflowServiceFutureStub workflowsFuture() {
    return WorkflowServiceGrpc.newFutureStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of ProjectService */
  public ProjectServiceGrpc.ProjectServiceFutureStub projectsFuture() {
    return ProjectServiceGrpc.newFutureStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of WorkOrderService (unary calls only) */
  public WorkOrderServiceGrpc.WorkOrderServiceFutureStub workOrdersFuture() {
    return WorkOrderServiceGrpc.newFutureStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of WorkerService */
  public WorkerServiceGrpc.WorkerServiceFutureStub workerFuture() {
    return WorkerServiceGrpc.newFutureStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of TokenService */
  public TokenServiceGrpc.TokenServiceFutureStub tokensFuture() {
    return TokenServiceGrpc.newFutureStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of NotificationService */
  public NotificationServiceGrpc.NotificationServiceFutureStub notificationsFuture() {
    return NotificationServiceGrpc.newFutureStub(intercepted);
  }

  /** @return the future (ListenableFuture) stub of StatsService */
  public StatsServiceGrpc.StatsServiceFutureStub statsFuture() {
    return StatsServiceGrpc.newFutureStub(intercepted);
  }

  /**
   * A watch of work order events that resumes from its last cursor when the connection breaks
   * (a server restart, a proxy, a lost network), so no event is lost or repeated. Close it when
   * done.
   *
   * @param request what to watch: project, filter, work order ids, and where to start
   *     ({@code after_cursor}, or {@code from_now}); with {@code batching} ({@link
   *     WorkOrderWatch#batching}) the server sends events in batches, still handed out one by one
   * @return the watch, an iterator of the stream's answers (each an event and its cursor)
   */
  public WorkOrderWatch watch(WatchWorkOrdersRequest request) {
    return new WorkOrderWatch(this, request, true);
  }

  /**
   * The channel with this client's interceptors (token, default deadline, request ids), for stubs
   * of your own: {@code SomeServiceGrpc.newStub(client.interceptedChannel())}.
   *
   * @return the intercepted channel
   */
  public Channel interceptedChannel() {
    return intercepted;
  }

  /**
   * The underlying channel, for its state and lifecycle ({@code getState},
   * {@code resetConnectBackoff}). Calls made on it directly carry no token: make stubs on
   * {@link #interceptedChannel()} or use the async and future stubs here instead.
   *
   * @return the raw channel
   */
  public ManagedChannel channel() {
    return channel;
  }

  /** The OpenTelemetry instance the client traces with (its Worker too); null: none. */
  OpenTelemetry openTelemetry() {
    return openTelemetry;
  }

  /** Shuts the channel down, waiting up to 5 seconds for calls in flight. */
  @Override
  public void close() {
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  /**
   * The default service config: retry every call of the contract's services on UNAVAILABLE
   * (safe: mutating requests carry request ids), and spread calls over every address the target
   * names (round_robin; gRPC's default pick_first pins the client to one server). The same
   * policy as the Python and Go clients'. Numbers are Doubles, as grpc-java's JSON parser gives.
   */
  static Map<String, Object> serviceConfig() {
    List<Map<String, Object>> names = new ArrayList<>();
    for (String service : SERVICES) {
      names.add(Map.of("service", "runstatus.v1." + service));
    }
    Map<String, Object> retryPolicy = Map.of(
        "maxAttempts", 5.0,
        "initialBackoff", "0.1s",
        "maxBackoff", "2s",
        "backoffMultiplier", 2.0,
        "retryableStatusCodes", List.of("UNAVAILABLE"));
    return Map.of(
        "loadBalancingConfig", List.of(Map.of("round_robin", Map.of())),
        "methodConfig", List.of(Map.of("name", names, "retryPolicy", retryPolicy)));
  }

  /**
   * A new request id: a random (version 4) UUID.
   *
   * @return the id
   */
  public static String newRequestId() {
    return UUID.randomUUID().toString();
  }

  private static final Pattern IPV4_LOOPBACK = Pattern.compile("127(\\.\\d{1,3}){3}");

  /** Whether a gRPC target names this machine: localhost, 127.0.0.0/8, ::1 or a unix socket. */
  static boolean isLoopback(String address) {
    String target = address.trim().toLowerCase(Locale.ROOT);
    if (target.startsWith("unix:") || target.startsWith("unix-abstract:")) {
      return true;
    }
    if (target.startsWith("dns:")) {
      target = target.substring("dns:".length());
      if (target.startsWith("//")) {
        // dns://authority/host:port
        int slash = target.indexOf('/', 2);
        target = slash < 0 ? "" : target.substring(slash + 1);
      }
    }
    String host;
    if (target.startsWith("[")) {
      int close = target.indexOf(']');
      host = close < 0 ? target.substring(1) : target.substring(1, close);
    } else if (target.indexOf(':') == target.lastIndexOf(':')) {
      int colon = target.indexOf(':');
      host = colon < 0 ? target : target.substring(0, colon);
    } else {
      host = target; // a bare IPv6 literal
    }
    return host.equals("localhost")
        || host.endsWith(".localhost")
        || host.equals("::1")
        || host.equals("0:0:0:0:0:0:0:1")
        || IPV4_LOOPBACK.matcher(host).matches();
  }

  /** Adds {@code authorization: Bearer TOKEN} to every call. */
  public static final class BearerTokenInterceptor implements ClientInterceptor {
    private final String header;

    /**
     * An interceptor sending this token.
     *
     * @param token the API token's secret
     */
    public BearerTokenInterceptor(String token) {
      this.header = "Bearer " + Objects.requireNonNull(token, "token");
    }

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions callOptions, Channel next) {
      return new SimpleForwardingClientCall<>(next.newCall(method, callOptions)) {
        @Override
        public void start(Listener<RespT> responseListener, Metadata headers) {
          headers.put(AUTHORIZATION, header);
          super.start(responseListener, headers);
        }
      };
    }
  }

  /**
   * Gives every unary call without a deadline of its own this one. Streaming calls (a watch) are
   * left without: they are meant to stay open.
   */
  static final class DefaultDeadlineInterceptor implements ClientInterceptor {
    private final long nanos;

    DefaultDeadlineInterceptor(Duration deadline) {
      this.nanos = deadline.toNanos();
    }

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions callOptions, Channel next) {
      if (callOptions.getDeadline() == null && method.getType() == MethodDescriptor.MethodType.UNARY) {
        callOptions = callOptions.withDeadlineAfter(nanos, TimeUnit.NANOSECONDS);
      }
      return next.newCall(method, callOptions);
    }
  }

  /**
   * Gives a request with an empty {@code request_id} field (every mutating request has one) a new
   * random id, on a copy, so that gRPC's retries of the call, which resend that copy, are done
   * once by the server. The caller's message is left as it was: a message reused for a new call
   * gets a new id. {@link Builder#build} installs it.
   */
  public static final class RequestIdInterceptor implements ClientInterceptor {
    /** An interceptor; it holds no state, one may serve every channel. */
    public RequestIdInterceptor() {}

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions callOptions, Channel next) {
      return new SimpleForwardingClientCall<>(next.newCall(method, callOptions)) {
        @Override
        public void sendMessage(ReqT message) {
          super.sendMessage(withRequestId(message));
        }
      };
    }

    /**
     * The message with a new request id if it has an empty {@code request_id} string field; else
     * the message itself.
     *
     * @param message a request
     * @param <T> its type
     * @return the request to send
     */
    @SuppressWarnings("unchecked")
    public static <T> T withRequestId(T message) {
      if (message instanceof Message m) {
        FieldDescriptor field = m.getDescriptorForType().findFieldByName("request_id");
        if (field != null && !field.isRepeated() && field.getJavaType() == FieldDescriptor.JavaType.STRING
            && ((String) m.getField(field)).isEmpty()) {
          return (T) m.toBuilder().setField(field, newRequestId()).build();
        }
      }
      return message;
    }
  }

  /** How a client is made: its address, transport security, token, deadline and interceptors. */
  public static final class Builder {
    private final String address;
    private Boolean tls;
    private ChannelCredentials credentials;
    private String bearerToken;
    private Duration defaultDeadline;
    private boolean retries = true;
    private OpenTelemetry openTelemetry;
    private final List<ClientInterceptor> interceptors = new ArrayList<>();

    private Builder(String address) {
      this.address = Objects.requireNonNull(address, "address");
    }

    /**
     * TLS with the system's trusted roots (true) or plaintext (false); default: plaintext for
     * loopback only.
     *
     * @param tls whether to use TLS
     * @return this builder
     */
    public Builder tls(boolean tls) {
      this.tls = tls;
      return this;
    }

    /**
     * Plaintext, whatever the address.
     *
     * @return this builder
     */
    public Builder plaintext() {
      return tls(false);
    }

    /**
     * Channel credentials of your own, e.g. TlsChannelCredentials with a private CA or a client
     * certificate.
     *
     * @param credentials the channel's credentials
     * @return this builder
     */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = credentials;
      return this;
    }

    /**
     * Sends {@code authorization: Bearer TOKEN} with every call, on every stub of the client.
     *
     * @param token the API token's secret; null or empty: none
     * @return this builder
     */
    public Builder bearerToken(String token) {
      this.bearerToken = token;
      return this;
    }

    /**
     * A deadline for every unary call that sets none of its own (watches get none).
     *
     * @param deadline the deadline; null: none
     * @return this builder
     */
    public Builder defaultDeadline(Duration deadline) {
      this.defaultDeadline = deadline;
      return this;
    }

    /**
     * Whether calls are retried on UNAVAILABLE (default true). Request ids are filled in either
     * way.
     *
     * @param retries false to turn gRPC's retries off
     * @return this builder
     */
    public Builder retries(boolean retries) {
      this.retries = retries;
      return this;
    }

    /**
     * Traces every call with this OpenTelemetry instance (OpenTelemetry's gRPC instrumentation: a
     * client span per call, child of the current span, its W3C {@code traceparent} sent with the
     * call), and a {@link Worker} on the client makes a span per run and per step. Needs
     * opentelemetry-api and io.opentelemetry.instrumentation:opentelemetry-grpc-1.6 on the
     * classpath (optional dependencies of the client); without this call none of their classes is
     * loaded.
     *
     * @param openTelemetry e.g. the SDK your program built, or {@code GlobalOpenTelemetry.get()}; null: no tracing
     * @return this builder
     */
    public Builder openTelemetry(OpenTelemetry openTelemetry) {
      this.openTelemetry = openTelemetry;
      return this;
    }

    /**
     * Another interceptor, run after the client's own (it sees the token and the request id).
     *
     * @param interceptor the interceptor
     * @return this builder
     */
    public Builder intercept(ClientInterceptor interceptor) {
      interceptors.add(Objects.requireNonNull(interceptor, "interceptor"));
      return this;
    }

    /**
     * Opens the channel (lazily: it connects on the first call).
     *
     * @return the client
     */
    public RunstatusClient build() {
      ChannelCredentials creds = credentials;
      if (creds == null) {
        boolean useTls = tls != null ? tls : !isLoopback(address);
        creds = useTls ? TlsChannelCredentials.create() : InsecureChannelCredentials.create();
      }
      ManagedChannelBuilder<?> channel = Grpc.newChannelBuilder(address, creds);
      if (retries) {
        channel.defaultServiceConfig(serviceConfig()).enableRetry();
      } else {
        channel.disableRetry();
      }
      // ClientInterceptors.intercept runs the last interceptor of the list first.
      List<ClientInterceptor> all = new ArrayList<>(interceptors);
      if (defaultDeadline != null) {
        all.add(new DefaultDeadlineInterceptor(defaultDeadline));
      }
      if (bearerToken != null && !bearerToken.isEmpty()) {
        all.add(new BearerTokenInterceptor(bearerToken));
      }
      all.add(new RequestIdInterceptor());
      if (openTelemetry != null) {
        // Last, so it runs first: its span covers the whole call, retries included.
        all.add(Tracing.clientInterceptor(openTelemetry));
      }
      return new RunstatusClient(channel.build(), all, openTelemetry);
    }
  }
}
