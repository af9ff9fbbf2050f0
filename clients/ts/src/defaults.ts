/**
 * The safe defaults every runstatus client applies (the Go client's defaults.go, the Python
 * client's service config): a unary call that fails UNAVAILABLE is retried with backoff, a
 * bounded number of times, and every mutating request without a request_id gets one first,
 * so the server does a retried call once and answers the repeat as it did the first.
 *
 * @module
 */

import { randomUUID } from "node:crypto";

import { clone, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** How {@link retryUnavailable} retries: the same policy as the Go and Python clients'. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 5; 1 turns retries off). */
  maxAttempts?: number;
  /** The first wait, in milliseconds (default 100); each next one doubles. */
  initialBackoffMs?: number;
  /** The longest wait, in milliseconds (default 2000). */
  maxBackoffMs?: number;
}

/** The retry policy {@link createClients} uses unless told otherwise. */
export const DEFAULT_RETRY: Required<RetryPolicy> = { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 2000 };

/**
 * An interceptor that retries a unary call failing with UNAVAILABLE (the server restarting,
 * a connection refused or lost, a database briefly unable to write), waiting a random time up
 * to a doubling backoff between attempts, as gRPC's retry policy does. Streams are not
 * retried here: {@link watchWorkOrders} resumes from its cursor instead. The call's deadline
 * and signal cover every attempt.
 *
 * Only safe together with {@link fillRequestId} placed before it (createClients does), so a
 * retried mutating call carries the id of its first attempt.
 */
export function retryUnavailable(policy: RetryPolicy = {}): Interceptor {
  const { maxAttempts, initialBackoffMs, maxBackoffMs } = { ...DEFAULT_RETRY, ...policy };
  return (next) => async (req) => {
    if (req.stream) return next(req);
    let backoff = initialBackoffMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        const unavailable = e instanceof ConnectError && e.code === Code.Unavailable;
        if (!unavailable || attempt >= maxAttempts || req.signal.aborted) throw e;
      }
      // Full jitter: many clients cut off by one restart do not all come back at once.
      await sleep(Math.random() * backoff, req.signal);
      backoff = Math.min(backoff * 2, maxBackoffMs);
    }
  };
}

/**
 * An interceptor that gives a request whose message has an empty `request_id` field (every
 * mutating request of runstatus has one) a new random id, on a copy: the caller's message is
 * left as it was, so a message reused for a new call gets a new id, while the retries of one
 * call (by {@link retryUnavailable}, placed after it) resend the same one.
 */
export const fillRequestId: Interceptor = (next) => async (req) => {
  if (req.stream) return next(req);
  const schema = req.method.input as DescMessage;
  const field = schema.fields.find((f) => f.name === "request_id" && f.fieldKind === "scalar");
  if (field === undefined) return next(req);
  const message = req.message as Message & Record<string, unknown>;
  if (message[field.localName]) return next(req);
  const filled = clone(schema, message) as Message & Record<string, unknown>;
  filled[field.localName] = newRequestId();
  return next({ ...req, message: filled });
};

/** A new request id: a random (version 4) UUID. */
export function newRequestId(): string {
  return randomUUID();
}

/** Resolves after `ms`, or as soon as `signal` aborts (then rejects with its reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
