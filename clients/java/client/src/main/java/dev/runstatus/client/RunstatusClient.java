package dev.runstatus.client;

import dev.runstatus.v1.ClassifierServiceGrpc;
import dev.runstatus.v1.ProjectServiceGrpc;
import dev.runstatus.v1.WorkOrderServiceGrpc;
import dev.runstatus.v1.WorkerServiceGrpc;
import dev.runstatus.v1.WorkflowServiceGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall.SimpleForwardingClientCall;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.TlsChannelCredentials;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * A thin client of a runstatus server: one channel and a blocking stub for each of the five services.
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
 */
public final class RunstatusClient implements AutoCloseable {
  /** The {@code authorization} request header. */
  public static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final ManagedChannel channel;
  private final ClassifierServiceGrpc.ClassifierServiceBlockingStub classifier;
  private final WorkflowServiceGrpc.WorkflowServiceBlockingStub workflows;
  private final ProjectServiceGrpc.ProjectServiceBlockingStub projects;
  private final WorkOrderServiceGrpc.WorkOrderServiceBlockingStub workOrders;
  private final WorkerServiceGrpc.WorkerServiceBlockingStub worker;

  private RunstatusClient(ManagedChannel channel, List<ClientInterceptor> interceptors) {
    this.channel = channel;
    Channel intercepted = ClientInterceptors.intercept(channel, interceptors);
    this.classifier = ClassifierServiceGrpc.newBlockingStub(intercepted);
    this.workflows = WorkflowServiceGrpc.newBlockingStub(intercepted);
    this.projects = ProjectServiceGrpc.newBlockingStub(intercepted);
    this.workOrders = WorkOrderServiceGrpc.newBlockingStub(intercepted);
    this.worker = WorkerServiceGrpc.newBlockingStub(intercepted);
  }

  /** A client of the server at this address, with the defaults (no token, no deadline). */
  public static RunstatusClient connect(String address) {
    return builder(address).build();
  }

  public static Builder builder(String address) {
    return new Builder(address);
  }

  public ClassifierServiceGrpc.ClassifierServiceBlockingStub classifier() {
    return classifier;
  }

  public WorkflowServiceGrpc.WorkflowServiceBlockingStub workflows() {
    return workflows;
  }

  public ProjectServiceGrpc.ProjectServiceBlockingStub projects() {
    return projects;
  }

  public WorkOrderServiceGrpc.WorkOrderServiceBlockingStub workOrders() {
    return workOrders;
  }

  public WorkerServiceGrpc.WorkerServiceBlockingStub worker() {
    return worker;
  }

  /** The underlying channel, e.g. for async or streaming stubs (WatchWorkOrders). */
  public ManagedChannel channel() {
    return channel;
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

  /** Gives every call without a deadline of its own this one. */
  static final class DefaultDeadlineInterceptor implements ClientInterceptor {
    private final long nanos;

    DefaultDeadlineInterceptor(Duration deadline) {
      this.nanos = deadline.toNanos();
    }

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions callOptions, Channel next) {
      if (callOptions.getDeadline() == null) {
        callOptions = callOptions.withDeadlineAfter(nanos, TimeUnit.NANOSECONDS);
      }
      return next.newCall(method, callOptions);
    }
  }

  public static final class Builder {
    private final String address;
    private Boolean tls;
    private ChannelCredentials credentials;
    private String bearerToken;
    private Duration defaultDeadline;
    private final List<ClientInterceptor> interceptors = new ArrayList<>();

    private Builder(String address) {
      this.address = Objects.requireNonNull(address, "address");
    }

    /** TLS with the system's trusted roots (true) or plaintext (false); default: plaintext for loopback only. */
    public Builder tls(boolean tls) {
      this.tls = tls;
      return this;
    }

    /** Plaintext, whatever the address. */
    public Builder plaintext() {
      return tls(false);
    }

    /** Channel credentials of your own, e.g. TlsChannelCredentials with a private CA or a client certificate. */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = credentials;
      return this;
    }

    /** Sends {@code authorization: Bearer TOKEN} with every call; null or empty: none. */
    public Builder bearerToken(String token) {
      this.bearerToken = token;
      return this;
    }

    /** A deadline for every call that sets none of its own; null: none. */
    public Builder defaultDeadline(Duration deadline) {
      this.defaultDeadline = deadline;
      return this;
    }

    /** Another interceptor, run after the client's own. */
    public Builder intercept(ClientInterceptor interceptor) {
      interceptors.add(Objects.requireNonNull(interceptor, "interceptor"));
      return this;
    }

    public RunstatusClient build() {
      ChannelCredentials creds = credentials;
      if (creds == null) {
        boolean useTls = tls != null ? tls : !isLoopback(address);
        creds = useTls ? TlsChannelCredentials.create() : InsecureChannelCredentials.create();
      }
      ManagedChannel channel = Grpc.newChannelBuilder(address, creds).build();
      // ClientInterceptors.intercept runs the last interceptor of the list first.
      List<ClientInterceptor> all = new ArrayList<>(interceptors);
      if (defaultDeadline != null) {
        all.add(new DefaultDeadlineInterceptor(defaultDeadline));
      }
      if (bearerToken != null && !bearerToken.isEmpty()) {
        all.add(new BearerTokenInterceptor(bearerToken));
      }
      return new RunstatusClient(channel, all);
    }
  }
}
