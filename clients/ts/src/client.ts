/**
 * A typed client of runstatus: one connect client per service over one gRPC (HTTP/2)
 * transport, with the safe defaults of every runstatus client (retries of UNAVAILABLE, a
 * request id in every mutating request), an optional bearer token, and TLS with a private CA
 * and a client certificate.
 *
 *     const rs = createClients("127.0.0.1:50051", { token: "..." });
 *     const { classification } = await rs.classifier.classify({ error: { name: "TypeError" } });
 *     rs.close();
 *
 * @module
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { fillRequestId, retryUnavailable, type RetryPolicy } from "./defaults.js";
import { ClassifierService } from "./gen/runstatus/v1/classifier_service_pb.js";
import { NotificationService } from "./gen/runstatus/v1/notification_service_pb.js";
import { ProjectService } from "./gen/runstatus/v1/project_service_pb.js";
import { StatsService } from "./gen/runstatus/v1/stats_service_pb.js";
import { TokenService } from "./gen/runstatus/v1/token_service_pb.js";
import { WorkOrderService, type WatchWorkOrdersRequestSchema } from "./gen/runstatus/v1/work_order_service_pb.js";
import { WorkerService } from "./gen/runstatus/v1/worker_service_pb.js";
import { WorkflowService } from "./gen/runstatus/v1/workflow_service_pb.js";
import { openTelemetry } from "./trace.js";
import { watchWorkOrders, type WatchedEvent, type WatchOptions } from "./watch.js";

/** PEM text or its bytes, as Node's TLS options take them. */
export type Pem = string | Buffer;

/** How {@link createClients} connects and what it adds to every call. */
export interface ClientOptions {
  /**
   * Speak gRPC over TLS (https). Default: plaintext HTTP/2 (h2c), unless `ca` or `cert` is
   * given. Without `ca` the server's certificate is checked against Node's public CAs.
   */
  tls?: boolean;
  /** The CA certificate(s) that signed the server's certificate (a private CA); implies TLS. */
  ca?: Pem;
  /** This client's certificate chain, for a server that requires one (mTLS); implies TLS. */
  cert?: Pem;
  /** The private key of `cert`. */
  key?: Pem;
  /** Sent with every call as `authorization: Bearer <token>`. */
  token?: string;
  /** Further interceptors, run after the token's and before the defaults'. */
  interceptors?: Interceptor[];
  /** A deadline for every unary call, in milliseconds (watches are exempt). */
  timeoutMs?: number;
  /**
   * How a unary call failing with UNAVAILABLE is retried (default: 5 attempts, 0.1-2 s
   * backoff); `false` turns retries off. Safe for every call: a mutating request without a
   * request id gets one before the first attempt.
   */
  retry?: RetryPolicy | false;
}

/** The seven service clients over one transport, and a resuming watch. */
export interface Clients {
  /** ClassifierService: Classify. */
  classifier: Client<typeof ClassifierService>;
  /** WorkflowService: create, get and list workflows. */
  workflows: Client<typeof WorkflowService>;
  /** ProjectService: create, get, update and list projects. */
  projects: Client<typeof ProjectService>;
  /** WorkOrderService: work orders, runs, cancel, retry, and the raw WatchWorkOrders stream. */
  workOrders: Client<typeof WorkOrderService>;
  /** WorkerService: claim, heartbeat and report (see {@link Worker} and {@link Lease}). */
  worker: Client<typeof WorkerService>;
  /** TokenService: API tokens of a server running with --auth, and who the caller is. */
  tokens: Client<typeof TokenService>;
  /** NotificationService: subscriptions to a webhook, Slack or email, and their deliveries. */
  notifications: Client<typeof NotificationService>;
  /** StatsService: a project's work orders over a window, by bucket, by workflow and by error. */
  stats: Client<typeof StatsService>;
  /**
   * Events of the event log after `request.afterCursor`, then live ones, resumed from the
   * last cursor after a lost connection or a server restart: see {@link watchWorkOrders}.
   */
  watch(request?: MessageInitShape<typeof WatchWorkOrdersRequestSchema>, options?: WatchOptions): AsyncIterable<WatchedEvent>;
  /** The transport the clients share. */
  transport: Transport;
  /** Closes the HTTP/2 connection (and any open streams), so the process can exit. */
  close(): void;
}

/** An interceptor that sends `authorization: Bearer <token>` with every call. */
export function bearerAuth(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

const headerSetter = { set: (headers: Headers, key: string, value: string) => headers.set(key, value) };

/**
 * An interceptor that sends the active span's W3C trace context (`traceparent`, `tracestate`)
 * with every call, by OpenTelemetry's global propagator, so that the server's span of the call
 * is a child of the caller's: when `@opentelemetry/api` is installed and a span is active;
 * otherwise it adds nothing. It is what OpenTelemetry's gRPC instrumentation puts on the wire;
 * that instrumentation patches `@grpc/grpc-js`, which this client does not use (connect-node
 * speaks gRPC over `node:http2`). {@link createClients} puts it first; add it yourself to a
 * transport made for {@link createClientsFromTransport}.
 */
export const traceContext: Interceptor = (next) => (req) => {
  const api = openTelemetry();
  if (api !== null) {
    const active = api.context.active();
    const span = api.trace.getSpan(active);
    if (span !== undefined && api.isSpanContextValid(span.spanContext())) {
      api.propagation.inject(active, req.header, headerSetter);
    }
  }
  return next(req);
};

/** The base URL of a server address: "host:port" or a URL with a scheme. */
export function baseUrl(address: string, tls = false): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) return address;
  return `${tls ? "https" : "http"}://${address}`;
}

/** The service clients over a transport of your own (no defaults are added to it). */
export function createClientsFromTransport(transport: Transport, close: () => void = () => {}): Clients {
  const workOrders = createClient(WorkOrderService, transport);
  return {
    classifier: createClient(ClassifierService, transport),
    workflows: createClient(WorkflowService, transport),
    projects: createClient(ProjectService, transport),
    workOrders,
    worker: createClient(WorkerService, transport),
    tokens: createClient(TokenService, transport),
    notifications: createClient(NotificationService, transport),
    stats: createClient(StatsService, transport),
    watch: (request = {}, options = {}) => watchWorkOrders(workOrders, request, options),
    transport,
    close,
  };
}

/**
 * Clients of the seven services at `address` ("host:port", or a URL), speaking real gRPC
 * over HTTP/2, with the defaults: {@link fillRequestId} and {@link retryUnavailable}.
 */
export function createClients(address: string, options: ClientOptions = {}): Clients {
  const tls = options.tls ?? (options.ca !== undefined || options.cert !== undefined);
  const url = baseUrl(address, tls);
  const secure = {
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(options.cert !== undefined ? { cert: options.cert } : {}),
    ...(options.key !== undefined ? { key: options.key } : {}),
  };
  const sessionManager = new Http2SessionManager(url, undefined, secure);
  // The trace context first: the span active when the call was made, set once for all attempts.
  const interceptors: Interceptor[] = [traceContext];
  if (options.token) interceptors.push(bearerAuth(options.token));
  interceptors.push(...(options.interceptors ?? []));
  // Outermost first: the id is filled once, before the attempts that resend it.
  interceptors.push(fillRequestId);
  if (options.retry !== false) interceptors.push(retryUnavailable(options.retry));
  const transport = createGrpcTransport({
    baseUrl: url,
    sessionManager,
    interceptors,
    ...(options.timeoutMs !== undefined ? { defaultTimeoutMs: options.timeoutMs } : {}),
  });
  return createClientsFromTransport(transport, () => sessionManager.abort());
}
