/**
 * A watch of the event log that resumes from its cursor: WatchWorkOrders reopened after the
 * last event it gave you whenever the stream breaks (a server restart, a lost connection, a
 * watch cut off for reading too slowly), so no event is missed and none is seen twice.
 *
 *     const stop = new AbortController();
 *     for await (const { event, cursor } of rs.watch({ projectId: "clinic" }, { signal: stop.signal })) {
 *       console.log(event.workOrderId, runStatusName(event.status));
 *     }
 *
 * With `{ batch: 100 }` the server sends up to 100 events per message (far cheaper for it when
 * many watch a busy project); they are still handed out one by one, each with its own cursor.
 *
 * @module
 */

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";

import { sleep } from "./defaults.js";
import { errorInfo, reasonOf } from "./errors.js";
import { ErrorReason } from "./gen/runstatus/v1/error_reason_pb.js";
import type { Event } from "./gen/runstatus/v1/event_pb.js";
import {
  WatchBatchingSchema,
  WatchWorkOrdersRequestSchema,
  type WorkOrderService,
} from "./gen/runstatus/v1/work_order_service_pb.js";

/** One event of a watch, and the cursor to resume after it. */
export interface WatchedEvent {
  /** The event: a work order's run changed status. */
  event: Event;
  /** Pass as `afterCursor` to a later watch to resume after this event. */
  cursor: string;
}

/** How {@link watchWorkOrders} runs. */
export interface WatchOptions {
  /** Ends the watch: the iteration finishes (no error) once it aborts. */
  signal?: AbortSignal;
  /** Reopen after a broken stream (default true); false: the error ends the iteration. */
  reconnect?: boolean;
  /** The waits before reopening, in milliseconds, the last repeated (reset by each event). */
  delaysMs?: readonly number[];
  /**
   * Batched delivery: the server sends up to this many events per message (1 to 1000), far
   * cheaper for it when many watch a busy project. The events are still handed out one by one,
   * each with its own cursor. Unset or 0: one event per message (or the request's `batching`).
   */
  batch?: number;
  /** With `batch`: the longest the server holds an event back for company, in ms (0 to 1000; default 100). */
  maxDelayMs?: number;
}

/**
 * How a watch ends when its cursor is older than the oldest event the server keeps
 * (OUT_OF_RANGE, reason CURSOR_EXPIRED): the events after your cursor were pruned by
 * retention, so it cannot resume from it. Re-read what you need (listWorkOrders), then
 * watch with `fromNow`. Still the server's ConnectError (its code, details, `reasonOf`).
 *
 *     try { for await (const e of rs.watch({ afterCursor })) handle(e); }
 *     catch (e) { if (e instanceof CursorExpiredError) { await reload(); afterCursor = ""; fromNow = true; } else throw e; }
 */
export class CursorExpiredError extends ConnectError {
  /** The oldest cursor a watch can still resume after (the ErrorInfo metadata "oldest_cursor"). */
  readonly oldestCursor: string;

  constructor(cause: ConnectError) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause);
    // connect-es tells its errors by this name (ConnectError's instanceof), so it stays.
    this.name = "ConnectError";
    this.details = cause.details;
    this.oldestCursor = errorInfo(cause)?.metadata["oldest_cursor"] ?? "";
  }

  /** Plain prototype-chain instanceof (ConnectError's own matches any error named ConnectError). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** The waits of the Python client's watch between reopenings. */
const RECONNECT_DELAYS_MS = [100, 200, 500, 1000, 2000] as const;

/**
 * The codes a broken stream ends with, after which the watch reopens: UNAVAILABLE (a restart,
 * a refused connection), CANCELLED and INTERNAL (as the Python client), and ABORTED, which is
 * how connect-node reports a connection reset under an open stream.
 */
const RECONNECT_CODES = new Set([Code.Unavailable, Code.Canceled, Code.Internal, Code.Aborted]);

/**
 * Events after `request.afterCursor` (empty: from the start of the log; `fromNow`: only what
 * is committed from now on), then live ones, until `options.signal` aborts. The stream has
 * no deadline (a client's `timeoutMs` is for unary calls). On a broken stream it reopens from
 * the last cursor it gave you, waiting a little longer after each failure in a row. With
 * `options.batch` (or `request.batching`) the server sends events in batches, still handed out
 * one by one, each with its own cursor (its sequence); a reopened stream resumes after the last
 * one handed out. A cursor
 * older than the log the server keeps ends it with a {@link CursorExpiredError}: re-list, then
 * watch from now.
 */
export async function* watchWorkOrders(
  workOrders: Client<typeof WorkOrderService>,
  request: MessageInitShape<typeof WatchWorkOrdersRequestSchema> = {},
  options: WatchOptions = {},
): AsyncGenerator<WatchedEvent, void, undefined> {
  const { signal, reconnect = true, delaysMs = RECONNECT_DELAYS_MS, batch = 0, maxDelayMs = 100 } = options;
  const base = create(WatchWorkOrdersRequestSchema, request);
  if (batch) base.batching = create(WatchBatchingSchema, { maxEvents: batch, maxDelay: durationFromMs(maxDelayMs) });
  let cursor = base.afterCursor;
  let failures = 0;
  while (!signal?.aborted) {
    // from_now only until the first event: after that the cursor says where to go on.
    const next = { ...base, afterCursor: cursor, fromNow: base.fromNow && !cursor };
    try {
      // timeoutMs 0: no deadline, whatever the transport's default.
      for await (const item of workOrders.watchWorkOrders(next, { timeoutMs: 0, ...(signal ? { signal } : {}) })) {
        failures = 0;
        if (item.events.length === 0) {
          cursor = item.cursor;
          if (item.event) yield { event: item.event, cursor };
        }
        // A batch: each event on its own, the cursor moving as each is handed out.
        for (const event of item.events) {
          cursor = String(event.sequence);
          yield { event, cursor };
        }
      }
      return; // the server ended the stream
    } catch (e) {
      if (signal?.aborted) return;
      if (e instanceof ConnectError && reasonOf(e) === ErrorReason.CURSOR_EXPIRED) throw new CursorExpiredError(e);
      if (!reconnect || !(e instanceof ConnectError)) throw e;
      // A watch cut off for reading too slowly resumes at once: its backlog is in the log.
      if (reasonOf(e) === ErrorReason.WATCH_TOO_SLOW) continue;
      if (!RECONNECT_CODES.has(e.code)) throw e;
    }
    const delay = delaysMs[Math.min(failures, delaysMs.length - 1)] ?? 0;
    failures++;
    try {
      await sleep(delay, signal);
    } catch {
      return; // aborted while waiting
    }
  }
}
