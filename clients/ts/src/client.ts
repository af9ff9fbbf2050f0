/**
 * A thin typed client of runstatus: one connect client per service over one gRPC
 * (HTTP/2) transport, with an optional bearer token.
 *
 *     const rs = createClients("127.0.0.1:50051", { token: "..." });
 *     const { classification } = await rs.classifier.classify({ error: { name: "TypeError" } });
 *     rs.close();
 */

import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { ClassifierService } from "./gen/runstatus/v1/classifier_service_pb.js";
import { ProjectService } from "./gen/runstatus/v1/project_service_pb.js";
import { WorkOrderService } from "./gen/runstatus/v1/work_order_service_pb.js";
import { WorkerService } from "./gen/runstatus/v1/worker_service_pb.js";
import { WorkflowService } from "./gen/runstatus/v1/workflow_service_pb.js";

export interface ClientOptions {
  /** Speak gRPC over TLS (https). Default: plaintext HTTP/2 (h2c). */
  tls?: boolean;
  /** Sent with every call as `authorization: Bearer <token>`. */
  token?: string;
  /** Further interceptors, run after the token's. */
  interceptors?: Interceptor[];
  /** A deadline for every call, in milliseconds. */
  timeoutMs?: number;
}

export interface Clients {
  classifier: Client<typeof ClassifierService>;
  workflows: Client<typeof WorkflowService>;
  projects: Client<typeof ProjectService>;
  workOrders: Client<typeof WorkOrderService>;
  worker: Client<typeof WorkerService>;
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

/** The base URL of a server address: "host:port" or a URL with a scheme. */
export function baseUrl(address: string, tls = false): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address)) return address;
  return `${tls ? "https" : "http"}://${address}`;
}

/** The five service clients over one transport. */
export function createClientsFromTransport(transport: Transport, close: () => void = () => {}): Clients {
  return {
    classifier: createClient(ClassifierService, transport),
    workflows: createClient(WorkflowService, transport),
    projects: createClient(ProjectService, transport),
    workOrders: createClient(WorkOrderService, transport),
    worker: createClient(WorkerService, transport),
    transport,
    close,
  };
}

/**
 * Clients of the five services at `address` ("host:port"), speaking real gRPC over
 * HTTP/2 (the gRPC transport of connect-node is HTTP/2 only).
 */
export function createClients(address: string, options: ClientOptions = {}): Clients {
  const url = baseUrl(address, options.tls);
  const sessionManager = new Http2SessionManager(url);
  const interceptors: Interceptor[] = [];
  if (options.token) interceptors.push(bearerAuth(options.token));
  interceptors.push(...(options.interceptors ?? []));
  const transport = createGrpcTransport({
    baseUrl: url,
    sessionManager,
    interceptors,
    ...(options.timeoutMs !== undefined ? { defaultTimeoutMs: options.timeoutMs } : {}),
  });
  return createClientsFromTransport(transport, () => sessionManager.abort());
}
